"""The directory of services a coordinator refers to: ``HealthcareService`` offered by an Organization at
Locations (the Gravity SDOH model of community-based services), searched by category or type, name, and
postal code or city.

Requests: one ``HealthcareService`` search with ``_include`` of organization and location (one batch of
reads per page instead where the server ignores ``_include``); with ``near``, one ``Location`` search
first, whose matches narrow the service search (``location=``). Never one request per service.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import asdict, dataclass
from typing import Any

from ..fhir import FhirClient
from .labels import concept_text, reference_of
from .related import related_resources
from .rows import Rows, drain

COLUMNS = ("name", "category", "type", "organization_name", "where", "phone", "service")
#: at most this many matching locations narrow one service search (a longer list is cut, not paged)
MAX_LOCATIONS = 50


@dataclass(frozen=True)
class DirectoryEntry:
    service: str
    name: str
    category: str
    type: str
    organization: str | None
    organization_name: str
    locations: tuple[str, ...]
    where: str
    phone: str
    active: bool

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["locations"] = list(self.locations)
        return out

    def label(self) -> str:
        """How a picker names the service: name, provider and where."""
        parts = [self.name]
        if self.organization_name and self.organization_name != self.name:
            parts.append(self.organization_name)
        if self.where:
            parts.append(self.where)
        return " · ".join(parts)


def address_text(location: dict[str, Any] | None) -> str:
    """``Name, line, City postal`` of a Location (what a coordinator reads to tell two sites apart)."""
    if not location:
        return ""
    found = location.get("address")
    address: dict[str, Any] = found if isinstance(found, dict) else {}
    lines = [str(line) for line in address.get("line") or [] if isinstance(line, str)]
    town = " ".join(str(address[k]) for k in ("city", "postalCode") if address.get(k))
    parts = [str(location.get("name") or ""), *lines, town]
    return ", ".join(p for p in parts if p)


def _phone(service: dict[str, Any], organization: dict[str, Any] | None) -> str:
    for holder in (service, organization or {}):
        for telecom in holder.get("telecom") or []:
            if isinstance(telecom, dict) and telecom.get("system") == "phone" and telecom.get("value"):
                return str(telecom["value"])
    return ""


def entry_of(service: dict[str, Any], related: dict[str, dict[str, Any]]) -> DirectoryEntry:
    organization_ref = reference_of(service.get("providedBy"))
    organization = related.get(organization_ref or "")
    location_refs = tuple(ref for loc in service.get("location") or [] if (ref := reference_of(loc)))
    where = "; ".join(filter(None, (address_text(related.get(ref)) for ref in location_refs)))
    return DirectoryEntry(
        service=f"HealthcareService/{service.get('id')}",
        name=str(service.get("name") or concept_text(service.get("type")) or "service"),
        category=concept_text(service.get("category")),
        type=concept_text(service.get("type")),
        organization=organization_ref,
        organization_name=str((organization or {}).get("name") or ""),
        locations=location_refs,
        where=where,
        phone=_phone(service, organization),
        active=service.get("active") is not False,
    )


def _locations_near(client: FhirClient, near: str) -> list[str]:
    """Locations whose postal code starts with ``near`` (when it holds a digit) or whose city does."""
    parameter = "address-postalcode" if any(c.isdigit() for c in near) else "address-city"
    found: list[str] = []
    for location in client.search("Location", [(parameter, near.strip()), ("_count", str(MAX_LOCATIONS))]):
        found.append(f"Location/{location['id']}")
        if len(found) >= MAX_LOCATIONS:
            break
    return found


def stream_directory(
    client: FhirClient,
    category: str | None = None,
    service_type: str | None = None,
    name: str | None = None,
    near: str | None = None,
    page_size: int | None = None,
    include_inactive: bool = False,
) -> Generator[DirectoryEntry, None, bool]:
    """Matching services in the server's order, one page in memory at a time (without ``page_size``,
    pages as large as the server allows); returns whether the search stopped before its end."""
    params: list[tuple[str, str]] = client.paging.params(page_size)
    if near:
        locations = _locations_near(client, near)
        if not locations:
            return False
        params.append(("location", ",".join(locations)))
    if category:
        params.append(("service-category", category))
    if service_type:
        params.append(("service-type", service_type))
    if name:
        params.append(("name", name))
    if not include_inactive:
        params.append(("active", "true"))
    use_include = client.include_works("HealthcareService", "HealthcareService:organization")
    if use_include:
        params += [
            ("_include", "HealthcareService:organization"),
            ("_include", "HealthcareService:location"),
        ]
    search = client.search("HealthcareService", params)
    for page in search.pages():
        wanted = (
            ref
            for service in page.matches
            for ref in (
                reference_of(service.get("providedBy")),
                *(reference_of(loc) for loc in service.get("location") or []),
            )
        )
        related = related_resources(client, page, wanted, use_include)
        for service in page.matches:
            yield entry_of(service, related)
    return search.truncated


def directory(client: FhirClient, **options: Any) -> list[DirectoryEntry]:
    """Every matching service, by name (then provider, then reference, so the order is stable); a
    :class:`~fhircare.views.rows.Rows` whose ``truncated`` says whether paging stopped before the end."""
    rows = drain(stream_directory(client, **options))
    return Rows(sorted(rows, key=lambda e: (e.name.lower(), e.organization_name, e.service)), rows.truncated)
