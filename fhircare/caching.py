"""Values made once per long-lived object (a loaded schema, a mapping set), found by its identity.

Schemas are dicts and mapping sets compare by value, so neither hashes; both come from caches that
keep them for the life of the process, so their ``id`` is a stable key. An entry keeps the objects
themselves, so an ``id`` reused after an object is gone never finds the other's value. Bounded:
objects made elsewhere (tests, one-off schemas) must not grow it without limit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

V = TypeVar("V")


class IdentityCache(Generic[V]):
    """``get((a, b), make)``: the value made for exactly these objects, made by ``make`` the first time."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._made: dict[tuple[int, ...], tuple[tuple[object, ...], V]] = {}

    def get(self, objects: tuple[object, ...], make: Callable[[], V]) -> V:
        key = tuple(id(o) for o in objects)
        found = self._made.get(key)
        if found is not None and all(kept is o for kept, o in zip(found[0], objects, strict=True)):
            return found[1]
        value = make()
        if len(self._made) >= self.limit:
            self._made.clear()
        self._made[key] = (objects, value)
        return value
