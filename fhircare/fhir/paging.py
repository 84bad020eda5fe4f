"""Pages of a search and what one client knows of its server's paging (no HTTP here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from ..errors import FhirServerError


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
