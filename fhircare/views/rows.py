"""A view's rows: a plain list that also says whether paging stopped before the end."""

from __future__ import annotations

from collections.abc import Generator, Iterable
from typing import TypeVar

T = TypeVar("T")


class Rows(list[T]):
    """The rows of a view (a ``list``, so every caller of the views keeps working) and ``truncated``:
    True when a search the view ran stopped before its end (the server reported more than it returned
    and offered no way on; :class:`fhircare.fhir.search.SearchSet` logged a warning)."""

    def __init__(self, rows: Iterable[T] = (), truncated: bool = False) -> None:
        super().__init__(rows)
        self.truncated = truncated


def drain(stream: Generator[T, None, bool]) -> Rows[T]:
    """Every row of a view's stream, with the ``truncated`` flag the stream returns when it ends."""
    rows: list[T] = []
    while True:
        try:
            rows.append(next(stream))
        except StopIteration as end:
            return Rows(rows, bool(end.value))


def truncated(rows: Iterable[object]) -> bool:
    """Whether a view's rows (a :class:`Rows`) stopped before the end; False for any other list.

    ``worklist`` and ``directory`` are still annotated ``list[...]`` (a caller's ``rows = []`` followed
    by ``rows = worklist(...)`` type-checks as before), so the faces ask through this."""
    return bool(getattr(rows, "truncated", False))
