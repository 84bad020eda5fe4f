"""Names and context the patient page shows beside the summary: the payer of each coverage, who and
where each appointment is with. One batch for the appointments and payers, one more for the people and
places the appointments name (only when there are any)."""

from __future__ import annotations

from typing import Any

from ..fhir import FhirClient
from ..views.directory import address_text
from ..views.labels import concept_text, person_name, reference_of


def read_all(client: FhirClient, refs: set[str]) -> dict[str, dict[str, Any]]:
    """``Type/id`` -> resource for the literal references that exist, in one batch."""
    return client.read_found(sorted(r for r in refs if r.count("/") == 1))


def name_of(resource: dict[str, Any] | None) -> str:
    if not resource:
        return ""
    if resource.get("resourceType") == "Location":
        return address_text(resource)
    if resource.get("resourceType") in ("Organization", "HealthcareService"):
        return str(resource.get("name") or "")
    return person_name(resource)


def summary_context(client: FhirClient, summary: Any) -> dict[str, dict[str, str]]:
    """``{"payers": {Coverage/x: "Blue Lake Health Plan · plan · 2026-01-01 to 2026-12-31"},
    "appointments": {Appointment/y: "with Jordan Rivera at Riverside campus, ... · reason"}}``."""
    coverages = {c["reference"] for c in summary.coverage}
    appointments = {a["reference"] for a in summary.upcoming_appointments + summary.missed_appointments}
    first = read_all(client, coverages | appointments)
    named: set[str] = set()
    for ref in coverages | appointments:
        resource = first.get(ref) or {}
        named |= {r for p in resource.get("payor") or [] if (r := reference_of(p))}
        named |= {r for p in resource.get("participant") or [] if (r := reference_of(p.get("actor")))}
    names = {
        ref: name_of(r)
        for ref, r in read_all(client, {n for n in named if not n.startswith("Patient/")}).items()
    }
    payers: dict[str, str] = {}
    for ref in coverages:
        coverage = first.get(ref) or {}
        payor = ", ".join(names.get(r, r) for p in coverage.get("payor") or [] if (r := reference_of(p)))
        plan = ", ".join(
            str(c.get("name") or c.get("value"))
            for c in coverage.get("class") or []
            if isinstance(c, dict) and (c.get("name") or c.get("value"))
        )
        period = coverage.get("period") or {}
        span = " to ".join(str(period[k])[:10] for k in ("start", "end") if period.get(k))
        payers[ref] = " · ".join(p for p in (payor, plan, span) if p)
    context: dict[str, str] = {}
    for ref in appointments:
        appointment = first.get(ref) or {}
        actors = [reference_of(p.get("actor")) for p in appointment.get("participant") or []]
        people = [
            names[a]
            for a in actors
            if a and a.startswith(("Practitioner", "PractitionerRole")) and a in names
        ]
        places = [
            names[a] for a in actors if a and a.startswith(("Location", "HealthcareService")) and a in names
        ]
        reason = concept_text(appointment.get("reasonCode")) or str(appointment.get("description") or "")
        parts = []
        if people:
            parts.append("with " + ", ".join(people))
        if places:
            parts.append("at " + "; ".join(places))
        if reason:
            parts.append(reason)
        context[ref] = " · ".join(parts)
    return {"payers": payers, "appointments": context}
