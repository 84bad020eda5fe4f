"""A ride and its appointment: when the appointment starts, and the rides already arranged to it (active
ServiceRequests naming it as supporting information, the transport workflow's shape). One batch."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from ..fhir import FhirClient
from .labels import reference_of


@dataclass(frozen=True)
class RideContext:
    appointment_start: str | None
    rides: list[tuple[str, str]]  # (ServiceRequest/id, pick-up time) of active rides to the appointment


def ride_context(client: FhirClient, patient: str, appointment: str) -> RideContext:
    """The appointment's start and the active rides to it (one batch: the appointment, the requests)."""
    query = urlencode({"patient": patient, "status": "active", "_count": "200"})
    found = client.read_batch([appointment, f"ServiceRequest?{query}"])
    start = None
    if found and isinstance(found[0].get("resource"), dict):
        start = found[0]["resource"].get("start")
    rides = []
    bundle = (found[1].get("resource") or {}) if len(found) > 1 else {}
    for entry in bundle.get("entry") or []:
        request = entry.get("resource") or {}
        if request.get("resourceType") != "ServiceRequest":
            continue
        if appointment in {reference_of(s) for s in request.get("supportingInfo") or []}:
            rides.append(
                (f"ServiceRequest/{request.get('id')}", str(request.get("occurrenceDateTime") or ""))
            )
    return RideContext(str(start) if start else None, rides)
