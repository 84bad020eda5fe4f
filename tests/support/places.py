"""Every place in a JSON document, and a copy with one place replaced: for tests that try a value
everywhere a payload holds one."""

from __future__ import annotations

from typing import Any


def places(node: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """The path of every value in a document, nested ones included (the root itself excluded)."""
    found = [at] if at else []
    if isinstance(node, dict):
        for key, value in node.items():
            found += places(value, (*at, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += places(value, (*at, i))
    return found


def replaced(node: Any, at: tuple[Any, ...], value: Any) -> Any:
    """A copy of ``node`` with ``value`` at path ``at`` (a missing key is added)."""
    if not at:
        return value
    head, rest = at[0], at[1:]
    if isinstance(node, dict):
        return {**node, head: replaced(node.get(head), rest, value)}
    return [replaced(v, rest, value) if i == head else v for i, v in enumerate(node)]
