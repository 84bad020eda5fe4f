"""Keyset paging over ``_lastUpdated``: each page asks again from the last instant it saw.

Offset paging over a changing result skips entries: a Task written while we page (by us, when we link a
sent Task; by the partner, when it moves one) leaves its place, the ones after it move up one, and the
next ``_offset`` steps over one of them for good. Asking ``_lastUpdated=ge<last instant seen>`` for
every page cannot skip anything; what it repeats (the entries at that instant) the caller already
dedupes. Only where a whole page shares one instant does it step over them with ``_offset``.
Works without next links (Medplum's router gives none).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..fhir import FhirClient
from .links import updated_of


def keyset_pages(
    client: FhirClient, resource_type: str, params: list[tuple[str, str]], since: str | None, size: int = 100
) -> Iterator[list[dict[str, Any]]]:
    """Pages of matches, oldest first, from ``since`` (inclusive) on."""
    bound, skip = since, 0
    while True:
        query = [*params, ("_sort", "_lastUpdated"), ("_count", str(size))]
        if bound:
            query.append(("_lastUpdated", f"ge{bound}"))
        if skip:
            query.append(("_offset", str(skip)))
        page = next(iter(client.search(resource_type, query).pages()), None)
        matches = list(page.matches) if page is not None else []
        if matches:
            yield matches
        if len(matches) < size:
            return
        last = updated_of(matches[-1])
        if last == bound:
            skip += len(matches)  # a whole page at one instant: step over it
        else:
            bound, skip = last, 0
