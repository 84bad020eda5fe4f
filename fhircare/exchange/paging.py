"""Keyset paging over ``_lastUpdated``: each page asks again from the last instant it saw.

Offset paging over a changing result skips entries: a Task written while we page (by us, when we link a
sent Task; by the partner, when it moves one) leaves its place, the ones after it move up one, and the
next ``_offset`` steps over one of them for good. Asking ``_lastUpdated=ge<last instant seen>`` for
every page cannot skip anything; what it repeats (the entries at that instant) the caller already
dedupes. Only where a whole page shares one instant does it step over them with ``_offset``.
Works without next links (Medplum's router gives none).

Each answer also tells the server's own time (``Bundle.meta.lastUpdated``, else the ``Date`` header,
floored to its second): the caller's overlap window is anchored there, never on our clock.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any

from ..errors import FhirServerError
from ..fhir import FhirClient
from ..fhir.outcome import json_body
from .context import PartnerAnswerError, PartnerClient, is_instant
from .links import updated_of

log = logging.getLogger("fhircare.exchange")

#: the most pages one partner search reads in one cycle (100 Tasks a page): a burst beyond it goes on
#: in the next cycle, from the cursor the pages before it moved
PARTNER_PAGES = 500


@dataclass
class ServerTime:
    """The server's time at the first page of a search, as it wrote it (None until known)."""

    value: str | None = None
    pages: list[int] = field(default_factory=list)


def _server_time(body: dict[str, Any], date_header: str | None) -> str | None:
    stamped = (body.get("meta") or {}).get("lastUpdated")
    if stamped:
        return str(stamped) if is_instant(stamped) else None
    if date_header:
        try:
            return parsedate_to_datetime(date_header).isoformat().replace("+00:00", "Z")
        except (TypeError, ValueError):
            return None
    return None


def _page(
    client: FhirClient, resource_type: str, query: list[tuple[str, str]]
) -> tuple[list[dict[str, Any]], str | None, int]:
    """One page: its matches, the server's time, and how many matches it held (dropped ones too)."""
    partner = isinstance(client, PartnerClient)
    kind = PartnerAnswerError if partner else FhirServerError
    response = client.request("GET", resource_type, params=query)
    try:
        body = json_body(response)
    except FhirServerError as exc:
        raise kind(exc.message, exc.issues, exc.http_status) from None
    except RecursionError:  # JSON nested deeper than the parser goes
        raise kind(f"a search for {resource_type} was answered with JSON nested too deeply") from None
    if not isinstance(body, dict) or body.get("resourceType") != "Bundle":
        raise kind(f"a search for {resource_type} was answered without a Bundle")
    raw = body.get("entry")
    entries: list[Any] = raw if isinstance(raw, list) else []
    matches = [
        e["resource"]
        for e in entries
        if isinstance(e, dict)
        and isinstance(e.get("resource"), dict)
        and e["resource"].get("resourceType") == resource_type
        and (e.get("search") or {}).get("mode", "match") == "match"
    ]
    held = len(matches)
    if partner:  # a partner's Task without a timestamp that orders is not applied (nor compared)
        matches = [m for m in matches if is_instant(updated_of(m))]
        if len(matches) < held:
            log.warning(
                "partner Task without a valid meta.lastUpdated; not applied",
                extra={"partner": getattr(client, "partner", ""), "count": held - len(matches)},
            )
    return matches, _server_time(body, response.headers.get("Date")), held


def keyset_pages(
    client: FhirClient,
    resource_type: str,
    params: list[tuple[str, str]],
    since: str | None,
    size: int = 100,
    clock: ServerTime | None = None,
) -> Iterator[list[dict[str, Any]]]:
    """Pages of matches, oldest first, from ``since`` (inclusive) on; ``clock`` gets the server's time.

    A partner's search may not hold the cycle: a page stepped over with ``_offset`` that brings nothing
    new (a server ignoring ``_offset`` repeats its full page at one instant), or more than
    ``PARTNER_PAGES`` pages in one cycle, ends it with a :class:`PartnerAnswerError` (logged, counted as
    an error; what was applied stays applied and the next cycle goes on from the cursor)."""
    partner = isinstance(client, PartnerClient)
    kind = PartnerAnswerError if partner else FhirServerError
    who = {"partner": client.partner} if isinstance(client, PartnerClient) else {}
    bound, skip, pages = since, 0, 0
    at_bound: set[str] = set()  # ids seen at the instant ``bound``
    while True:
        pages += 1
        if partner and pages > PARTNER_PAGES:
            log.warning(
                "partner search stopped: too many pages in one cycle", extra={**who, "pages": pages - 1}
            )
            raise kind(f"a search for {resource_type} ran past {PARTNER_PAGES} pages in one cycle")
        query = [*params, ("_sort", "_lastUpdated"), ("_count", str(size))]
        if bound:
            query.append(("_lastUpdated", f"ge{bound}"))
        if skip:
            query.append(("_offset", str(skip)))
        matches, stamped, held = _page(client, resource_type, query)
        if clock is not None:
            clock.value = clock.value or stamped
            clock.pages.append(len(matches))
        ids = {str(m.get("id")) for m in matches}
        if skip and matches and ids <= at_bound:
            log.warning("search stopped: a page stepped over with _offset came back the same", extra=who)
            raise kind(f"a search for {resource_type} repeated a full page at one instant (_offset ignored?)")
        if matches:
            yield matches
        if held < size or not matches:
            return
        last = updated_of(matches[-1])
        if last == bound:
            skip += len(matches)  # a whole page at one instant: step over it
            at_bound |= ids
        else:
            bound, skip = last, 0
            at_bound = {str(m.get("id")) for m in matches if updated_of(m) == last}
