"""What a server can do, read from its CapabilityStatement, so workflows can degrade with a clear message."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Resource types fhircare reads or writes, and the search parameters it relies on.
USED_SEARCH_PARAMS: dict[str, tuple[str, ...]] = {
    "Patient": ("identifier", "name"),
    "Task": ("owner", "status", "patient", "focus", "code", "based-on"),
    "ServiceRequest": ("patient", "status", "identifier"),
    "CarePlan": ("patient", "status", "category"),
    "CareTeam": ("patient", "participant"),
    "Goal": ("patient", "lifecycle-status"),
    "Appointment": ("patient", "status", "based-on", "date"),
    "Coverage": ("beneficiary", "payor", "status"),
    "Communication": ("patient", "recipient"),
    "Provenance": ("target", "agent"),
}


@dataclass(frozen=True)
class ResourceSupport:
    interactions: frozenset[str]
    search_params: frozenset[str]
    search_include: frozenset[str]
    search_revinclude: frozenset[str]
    conditional_create: bool
    conditional_update: bool


class Capabilities:
    """A parsed CapabilityStatement with the questions fhircare asks of a server."""

    def __init__(self, statement: dict[str, Any]) -> None:
        self.statement = statement
        rest: dict[str, Any] = next((r for r in statement.get("rest") or [] if r.get("mode") == "server"), {})
        self.system_interactions = frozenset(str(i.get("code")) for i in rest.get("interaction") or [])
        self.resources: dict[str, ResourceSupport] = {}
        for res in rest.get("resource") or []:
            self.resources[str(res.get("type"))] = ResourceSupport(
                interactions=frozenset(str(i.get("code")) for i in res.get("interaction") or []),
                search_params=frozenset(str(p.get("name")) for p in res.get("searchParam") or []),
                search_include=frozenset(str(x) for x in res.get("searchInclude") or []),
                search_revinclude=frozenset(str(x) for x in res.get("searchRevInclude") or []),
                conditional_create=bool(res.get("conditionalCreate")),
                conditional_update=bool(res.get("conditionalUpdate")),
            )
        self.security = rest.get("security") or {}

    @property
    def fhir_version(self) -> str:
        return str(self.statement.get("fhirVersion", "unknown"))

    @property
    def software(self) -> str:
        software = self.statement.get("software") or {}
        name = software.get("name") or self.statement.get("name") or "unknown"
        return f"{name} {software.get('version', '')}".strip()

    @property
    def transaction(self) -> bool:
        return "transaction" in self.system_interactions

    @property
    def batch(self) -> bool:
        return "batch" in self.system_interactions

    def supports_include(self, resource_type: str, spec: str | None = None) -> bool:
        support = self.resources.get(resource_type)
        if support is None or not support.search_include:
            return False
        return spec is None or "*" in support.search_include or spec in support.search_include

    def supports_revinclude(self, resource_type: str) -> bool:
        support = self.resources.get(resource_type)
        return bool(support and support.search_revinclude)

    def conditional_create(self, resource_type: str) -> bool:
        support = self.resources.get(resource_type)
        return bool(support and support.conditional_create)

    def conditional_update(self, resource_type: str) -> bool:
        support = self.resources.get(resource_type)
        return bool(support and support.conditional_update)

    def search_params(self, resource_type: str) -> frozenset[str]:
        support = self.resources.get(resource_type)
        return support.search_params if support else frozenset()

    def missing_search_params(self) -> dict[str, list[str]]:
        """Search parameters fhircare relies on that the server does not declare."""
        missing = {}
        for rtype, wanted in USED_SEARCH_PARAMS.items():
            have = self.search_params(rtype)
            lacking = [p for p in wanted if p not in have]
            if lacking:
                missing[rtype] = lacking
        return missing

    def summary(self) -> dict[str, Any]:
        return {
            "fhirVersion": self.fhir_version,
            "software": self.software,
            "transaction": self.transaction,
            "batch": self.batch,
            "conditionalCreate": sorted(t for t in USED_SEARCH_PARAMS if self.conditional_create(t)),
            "conditionalUpdate": sorted(t for t in USED_SEARCH_PARAMS if self.conditional_update(t)),
            "include": sorted(t for t in USED_SEARCH_PARAMS if self.supports_include(t)),
            "revinclude": sorted(t for t in USED_SEARCH_PARAMS if self.supports_revinclude(t)),
            "searchParams": {
                t: sorted(self.search_params(t) & set(p)) for t, p in USED_SEARCH_PARAMS.items()
            },
            "missingSearchParams": self.missing_search_params(),
            "resourceTypes": len(self.resources),
        }
