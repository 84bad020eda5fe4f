"""References a client has seen exist, so a coordinator's next run does not check them again."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable


class KnownReferences:
    """A bounded, thread-safe set of references known to exist (least recently added dropped first)."""

    def __init__(self, limit: int = 10_000) -> None:
        self.limit = limit
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def __contains__(self, reference: object) -> bool:
        with self._lock:
            return reference in self._seen

    def add(self, references: Iterable[str]) -> None:
        with self._lock:
            for reference in references:
                self._seen[reference] = None
                self._seen.move_to_end(reference)
            while len(self._seen) > self.limit:
                self._seen.popitem(last=False)

    def discard(self, reference: str) -> None:
        with self._lock:
            self._seen.pop(reference, None)
