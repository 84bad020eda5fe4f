"""Which organizations have played a role on this server: the payers of coverages, the performers of
rides. Pickers offer these first, so a coordinator choosing a payer sees payers (one search each)."""

from __future__ import annotations

from ..fhir import FhirClient
from .labels import reference_of

SEEN = 200


def payers(client: FhirClient) -> set[str]:
    """Organizations named as ``Coverage.payor`` (the latest coverages)."""
    found = client.search("Coverage", [("_count", str(SEEN)), ("_sort", "-_lastUpdated")])
    page = next(iter(found.pages()), None)
    matches = page.matches if page else []
    return {
        r
        for c in matches
        for p in c.get("payor") or []
        if (r := reference_of(p)) and r.startswith("Organization/")
    }


def ride_vendors(client: FhirClient, system: str, code: str) -> set[str]:
    """Organizations that performed rides: performers of ServiceRequests coded ``system|code``."""
    found = client.search(
        "ServiceRequest", [("code", f"{system}|{code}"), ("_count", str(SEEN)), ("_sort", "-_lastUpdated")]
    )
    page = next(iter(found.pages()), None)
    matches = page.matches if page else []
    return {
        r
        for s in matches
        for p in s.get("performer") or []
        if (r := reference_of(p)) and r.startswith("Organization/")
    }
