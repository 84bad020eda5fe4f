"""The mapping language's vocabulary, in one table: each expression and the options it takes.

The loader checks every mapping against it, so an unknown expression (``{$reff: requester}``), an
unknown option or an unknown transform fails when the file is loaded, with its file, JSON path and
reason, not at the first run. ``engine.evaluate`` implements exactly these expressions.
"""

from __future__ import annotations

from typing import Any

from .transforms import TRANSFORMS

#: expression key -> the option keys it accepts next to it
EXPRESSIONS: dict[str, frozenset[str]] = {
    "$": frozenset({"default"}),
    "$now": frozenset(),
    "$ref": frozenset(),
    "$refs": frozenset(),
    "$entry": frozenset({"index"}),
    "$entries": frozenset(),
    "$code": frozenset({"table", "default", "text_ok", "lenient"}),
    "$tablecode": frozenset({"table"}),
    "$text": frozenset({"table"}),
    "$join": frozenset({"sep"}),
    "$coding": frozenset({"table"}),
    "$if": frozenset({"then", "else", "equals"}),
    "$each": frozenset({"as", "do"}),
    "$fn": frozenset({"args"}),
    "$format": frozenset(),
}
#: options whose values are templates themselves (checked in turn)
TEMPLATE_OPTIONS = frozenset({"then", "else", "do", "args", "index", "default"})


def template_errors(node: Any, where: str) -> list[str]:
    """Every problem in a template, as ``path: reason`` (empty when it is well formed)."""
    if isinstance(node, list):
        return [e for i, child in enumerate(node) for e in template_errors(child, f"{where}[{i}]")]
    if not isinstance(node, dict):
        return []
    keys = [k for k in node if k.startswith("$")]
    if not keys:
        return [e for key, child in node.items() for e in template_errors(child, f"{where}.{key}")]
    if len(keys) > 1:
        return [f"{where}: one expression per object, found {', '.join(sorted(keys))}"]
    (key,) = keys
    if key not in EXPRESSIONS:
        known = ", ".join(sorted(EXPRESSIONS))
        return [f"{where}: unknown expression {key!r} (known: {known})"]
    errors = [
        f"{where}: {key} takes no option {option!r} (it takes: {', '.join(sorted(EXPRESSIONS[key])) or 'none'})"
        for option in node
        if option != key and option not in EXPRESSIONS[key]
    ]
    if key == "$fn" and node[key] not in TRANSFORMS:
        errors.append(f"{where}: unknown transform {node[key]!r} (known: {', '.join(sorted(TRANSFORMS))})")
    if key in ("$join", "$if") and not isinstance(node[key], str):
        errors += template_errors(node[key], f"{where}.{key}")
    for option in TEMPLATE_OPTIONS & set(node):
        errors += template_errors(node[option], f"{where}.{option}")
    return errors


def mapping_errors(document: dict[str, Any]) -> list[str]:
    """Template problems in a mapping's entries (resources and narratives)."""
    errors: list[str] = []
    for i, entry in enumerate(document.get("entries") or []):
        for part in ("resource", "narrative"):
            if part in entry:
                errors += template_errors(entry[part], f"$.entries[{i}].{part}")
    for i, update in enumerate(document.get("updates") or []):
        for j, operation in enumerate(update.get("patch") or []):
            for part in ("value", "values"):
                if part in operation:
                    errors += template_errors(operation[part], f"$.updates[{i}].patch[{j}].{part}")
    return errors
