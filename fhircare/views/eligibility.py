"""When eligibility was last asked for each of a patient's coverages (their CoverageEligibilityRequests,
one search), so a page can say "asked, awaiting the payer" until the payer's response arrives."""

from __future__ import annotations

from ..fhir import FhirClient
from .labels import reference_of


def eligibility_asked(client: FhirClient, patient: str) -> dict[str, str]:
    """``Coverage/id`` -> when eligibility was last asked for it (``created`` of the latest request)."""
    asked: dict[str, str] = {}
    for request in client.search("CoverageEligibilityRequest", [("patient", patient), ("_count", "100")]):
        created = str(request.get("created") or (request.get("meta") or {}).get("lastUpdated") or "")
        for insurance in request.get("insurance") or []:
            coverage = reference_of(insurance.get("coverage")) if isinstance(insurance, dict) else None
            if coverage and created > asked.get(coverage, ""):
                asked[coverage] = created
    return asked
