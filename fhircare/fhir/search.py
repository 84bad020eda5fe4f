"""Lazy, immutable searches. A page is fetched only when the previous one has been consumed."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any, Protocol

import requests

from ..errors import FhirServerError, NotFound
from .behaviour import ServerBehaviour
from .paging import LARGE_PAGE, SUBSETTED, Page, PagingLimits, page_of

log = logging.getLogger("fhircare.fhir")

__all__ = ["LARGE_PAGE", "SUBSETTED", "Page", "PagingLimits", "SearchSet", "page_of"]


class SearchingClient(Protocol):
    """What a search needs of its client (a :class:`~fhircare.fhir.client.FhirClient`)."""

    paging: PagingLimits

    @property
    def behaviour(self) -> ServerBehaviour: ...

    def learn(self, **changes: Any) -> None: ...

    def follow_link(self, url: str) -> str | None: ...

    def request(self, method: str, path_or_url: str, *, params: Any = None) -> requests.Response: ...


class SearchSet:
    """``client.search("Task", {...})``: iterate for matching resources, ``pages()`` for pages with includes.

    Chaining (``where``, ``include``, ``sort``, ``count``) returns a new SearchSet; nothing is sent
    until iteration starts. Memory stays constant: only the current page is held.
    """

    def __init__(self, client: SearchingClient, resource_type: str, params: list[tuple[str, str]]) -> None:
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
