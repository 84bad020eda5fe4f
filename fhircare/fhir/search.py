"""Lazy, immutable searches. A page is fetched only when the previous one has been consumed."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from ..errors import FhirServerError, NotFound

log = logging.getLogger("fhircare.fhir")

if TYPE_CHECKING:
    from .client import FhirClient


@dataclass(frozen=True)
class Page:
    """One searchset page: its matches, the resources ``_include``d with them, and its links."""

    matches: list[dict[str, Any]]
    included: list[dict[str, Any]]
    total: int | None
    next_url: str | None
    outcomes: list[dict[str, Any]] = field(default_factory=list)

    def by_reference(self) -> dict[str, dict[str, Any]]:
        """Every resource of the page (matches and includes) keyed by ``Type/id``."""
        return {f"{r['resourceType']}/{r['id']}": r for r in (*self.matches, *self.included) if r.get("id")}


#: the page size asked for by a view that reads every match, while the server's cap is not known:
#: servers cap ``_count`` at their maximum (the embedded server at 1,000) and say so by paging on
LARGE_PAGE = 1000
SUBSETTED = "SUBSETTED"


@dataclass
class PagingLimits:
    """What one client knows of its server's paging: declared by the user or seen in answers.

    ``declared_max``: the largest ``_count`` the server allows (``Settings.max_page_size``);
    ``learned_max``: a page came back smaller than asked while the server said more remained;
    ``next_links``: pages came with next links whenever more remained (True) or once did not (False);
    ``elements``: ``_elements`` subsetted the matches (their ``SUBSETTED`` tag) or was ignored.
    """

    declared_max: int | None = None
    learned_max: int | None = None
    next_links: bool | None = None
    elements: bool | None = None

    def page_size(self, wanted: int = LARGE_PAGE) -> int:
        """``wanted``, lowered to the declared or learned maximum."""
        return max(1, min([wanted, *(n for n in (self.declared_max, self.learned_max) if n)]))

    def params(
        self, page_size: int | None = None, totals: bool = False, elements: tuple[str, ...] = ()
    ) -> list[tuple[str, str]]:
        """Paging parameters for a view: ``page_size`` as given, else the largest page the server
        allows (the view reads every match); ``_total=none`` when the view needs no total and next
        links are known to work (without them ``total`` is how truncation is seen); ``_elements``
        when the view needs few fields, unless the server was seen to ignore it."""
        found = [("_count", str(page_size if page_size else self.page_size()))]
        if not totals and self.next_links:
            found.append(("_total", "none"))
        if elements and self.elements is not False:
            found.append(("_elements", ",".join(elements)))
        return found

    def learn(self, asked: int | None, page: Page, more: bool, elements: bool) -> None:
        """What one page shows: its next link (and the ``_count`` the server put in it, lower than
        the one asked where the server caps pages), and whether ``_elements`` subsetted it. A page
        merely smaller than asked teaches no cap: an answer filter (a patient compartment) makes those."""
        if more and page.next_url:
            self.next_links = True
        elif more:
            self.next_links = False
        capped = _link_count(page.next_url)
        if asked and capped and capped < asked:
            self.learned_max = min(self.learned_max or capped, capped)
        if elements and page.matches:
            tags = (page.matches[0].get("meta") or {}).get("tag") or []
            self.elements = any(isinstance(t, dict) and t.get("code") == SUBSETTED for t in tags)


def _link_count(url: str | None) -> int | None:
    """The ``_count`` a server wrote into its own paging link."""
    if not url:
        return None
    value = next((v for k, v in parse_qsl(urlsplit(url).query) if k == "_count"), "")
    return int(value) if value.isdigit() and int(value) > 0 else None


def page_of(bundle: dict[str, Any]) -> Page:
    if bundle.get("resourceType") != "Bundle" or bundle.get("type") != "searchset":
        raise FhirServerError(
            f"expected a searchset Bundle, got {bundle.get('resourceType')}/{bundle.get('type')}"
        )
    matches: list[dict[str, Any]] = []
    included: list[dict[str, Any]] = []
    outcomes: list[dict[str, Any]] = []
    for entry in bundle.get("entry") or []:
        resource = entry.get("resource")
        if not isinstance(resource, dict):
            continue
        mode = (entry.get("search") or {}).get("mode", "match")
        if mode == "outcome" or resource.get("resourceType") == "OperationOutcome":
            outcomes.append(resource)
        elif mode == "include":
            included.append(resource)
        else:
            matches.append(resource)
    next_url = next(
        (link.get("url") for link in bundle.get("link") or [] if link.get("relation") == "next"), None
    )
    total = bundle.get("total")
    return Page(matches, included, total if isinstance(total, int) else None, next_url, outcomes)


class SearchSet:
    """``client.search("Task", {...})``: iterate for matching resources, ``pages()`` for pages with includes.

    Chaining (``where``, ``include``, ``sort``, ``count``) returns a new SearchSet; nothing is sent
    until iteration starts. Memory stays constant: only the current page is held.
    """

    def __init__(self, client: FhirClient, resource_type: str, params: list[tuple[str, str]]) -> None:
        self.client = client
        self.resource_type = resource_type
        self.params = tuple(params)
        #: set by iteration: True when the server reported more results than could be fetched
        self.truncated = False

    def _with(self, *extra: tuple[str, str]) -> SearchSet:
        return SearchSet(self.client, self.resource_type, [*self.params, *extra])

    def where(self, **criteria: Any) -> SearchSet:
        return self._with(
            *((k.replace("_", "-") if not k.startswith("_") else k, str(v)) for k, v in criteria.items())
        )

    def include(self, spec: str) -> SearchSet:
        return self._with(("_include", spec))

    def sort(self, *keys: str) -> SearchSet:
        return self._with(("_sort", ",".join(keys)))

    def count(self, page_size: int) -> SearchSet:
        return self._with(("_count", str(page_size)))

    def pages(self) -> Iterator[Page]:
        """Pages in order: next links when the server gives them, else ``_offset`` when it reports (or
        fills a page so that it implies) more results than received. When neither can fetch the rest,
        ``truncated`` is set on this SearchSet and a warning is logged: never a silent cut."""
        self.truncated = False
        page = self._fetch(self.resource_type, list(self.params))
        received = len(page.matches)
        self._learn(page, received)
        yield page
        seen: set[str] = set()
        while True:
            if page.next_url:
                url = self.client.follow_link(page.next_url)
                if url is None:
                    raise FhirServerError("the server's next link points outside the configured FHIR base")
                if url in seen:
                    raise FhirServerError("the server's next link repeats an earlier page")
                seen.add(url)
                page = self._fetch(url, None)
            elif self._more_expected(page, received):
                following = self._offset_page(page, received)
                if following is None:
                    self.truncated = True
                    log.warning(
                        "search results truncated: the server reports more than it returned and offers no way on",
                        extra={
                            "resource_type": self.resource_type,
                            "received": received,
                            "total": page.total,
                        },
                    )
                    return
                page = following
            else:
                return
            if not page.matches and not page.next_url:
                return
            received += len(page.matches)
            yield page

    def _learn(self, page: Page, received: int) -> None:
        limits = getattr(self.client, "paging", None)
        if isinstance(limits, PagingLimits):
            more = bool(page.next_url) or (page.total is not None and page.total > received)
            elements = any(name == "_elements" for name, _ in self.params)
            limits.learn(self._requested_count(), page, more, elements)

    def _fetch(self, path: str, params: list[tuple[str, str]] | None) -> Page:
        response = self.client.request("GET", path, params=params)
        return page_of(_bundle(response.json() if response.content else {}))

    def _requested_count(self) -> int | None:
        for name, value in reversed(self.params):
            if name == "_count" and value.isdigit():
                return int(value)
        return None

    def _more_expected(self, page: Page, received: int) -> bool:
        if page.total is not None:
            return page.total > received
        count = self._requested_count()
        return count is not None and count > 0 and len(page.matches) >= count

    def _offset_page(self, previous: Page, received: int) -> Page | None:
        """The results after ``received`` through ``_offset``, or None when the server ignores it."""
        if self.client.behaviour.offset_paging is False:
            return None
        params = [(k, v) for k, v in self.params if k != "_offset"] + [("_offset", str(received))]
        page = self._fetch(self.resource_type, params)
        before = {r.get("id") for r in previous.matches}
        if page.matches and page.matches[0].get("id") in before:
            self.client.learn(offset_paging=False)
            return None
        if page.matches:
            self.client.learn(offset_paging=True)
        return page

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for page in self.pages():
            yield from page.matches

    def first(self) -> dict[str, Any] | None:
        return next(iter(self.count(1)), None)

    def get(self) -> dict[str, Any]:
        """Exactly one match, else NotFound / FhirServerError."""
        found = list(self.count(2).pages().__next__().matches)
        if not found:
            raise NotFound(f"no {self.resource_type} matches the search")
        if len(found) > 1:
            raise FhirServerError(f"more than one {self.resource_type} matches the search")
        return found[0]

    def total(self) -> int:
        page = next(self._with(("_summary", "count")).pages())
        return page.total or 0


def _bundle(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise FhirServerError("search answered with something that is not a Bundle")
    return body
