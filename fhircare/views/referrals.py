"""A patient's referrals (service, partner, status and why, due, outcome) and closed tasks, so nothing
finished vanishes from the patient page. Two requests: one batch of two Task searches (fulfilment Tasks,
the Gravity SDOH referral shape; Tasks in a final status), one batch of reads for what they name (and
one more for who did the outcomes, when the page names someone it has not read yet)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlencode

from ..care.task_states import TERMINAL
from ..fhir import FhirClient
from .labels import (
    Outcome,
    concept_text,
    outcome_references,
    outcomes,
    performer_references,
    person_name,
    reference_of,
    resource_label,
)
from .worklist import due_of

CLOSED_SHOWN = 20


@dataclass(frozen=True)
class Referral:
    task: str
    request: str | None
    service: str
    partner: str
    status: str
    status_reason: str
    due: str | None
    outcome: str
    written: str
    owner: str | None = None  # the Task's owner (a partner's Organization for a referral out)
    outcomes: tuple[Outcome, ...] = ()  # the outcome in words: what was done, when, by whom, whose record
    # the Task's extensions, where the exchange keeps its link to the partner's Task (read by
    # fhircare.exchange.links.read_link one layer up; not part of the row's JSON)
    extension: tuple[dict[str, Any], ...] = field(default=(), repr=False, compare=False)

    def as_dict(self) -> dict[str, Any]:
        found = asdict(self)
        found.pop("extension")
        return found


@dataclass(frozen=True)
class ClosedTask:
    task: str
    what: str
    status: str
    reason: str
    ended: str


def _matches(entry: dict[str, Any]) -> list[dict[str, Any]]:
    bundle = entry.get("resource") or {}
    return [
        e["resource"]
        for e in bundle.get("entry") or []
        if isinstance(e.get("resource"), dict) and e["resource"].get("resourceType") == "Task"
    ]


def _name(resource: dict[str, Any] | None) -> str:
    if not resource:
        return ""
    if resource.get("resourceType") in ("Practitioner", "RelatedPerson", "Patient"):
        return person_name(resource)
    return str(resource.get("name") or "") or resource_label(resource)


def _outcomes(task: dict[str, Any], named: dict[str, dict[str, Any]]) -> tuple[Outcome, ...]:
    """What a finished referral resulted in, in words (a concept, or what the resource it names says)."""
    return tuple(outcomes(task, named, {ref: _name(r) for ref, r in named.items()}))


def patient_referrals(client: FhirClient, patient: str) -> tuple[list[Referral], list[ClosedTask]]:
    """(the patient's referrals, newest first; the latest closed tasks, newest first)."""
    referrals_query = urlencode({"patient": patient, "code": "fulfill", "_count": "100"})
    closed_query = urlencode(
        {
            "patient": patient,
            "status": ",".join(sorted(TERMINAL)),
            "_sort": "-_lastUpdated",
            "_count": str(CLOSED_SHOWN),
        }
    )
    found = client.read_batch([f"Task?{referrals_query}", f"Task?{closed_query}"])
    referral_tasks = _matches(found[0]) if found else []
    closed = _matches(found[1]) if len(found) > 1 else []
    wanted = set()
    for task in referral_tasks:
        wanted |= {reference_of(task.get("focus")), reference_of(task.get("owner"))}
        wanted |= set(outcome_references(task))
    named = client.read_found(sorted(r for r in wanted if r and r.count("/") == 1))
    done = [named.get(o) for t in referral_tasks for o in outcome_references(t)]
    if missing := [r for r in performer_references(done) if r not in named and not r.startswith("Patient/")]:
        named |= client.read_found(missing)  # who did the outcomes (one batch, only when someone is new)
    referrals = []
    for task in referral_tasks:
        request_ref = reference_of(task.get("focus"))
        if not request_ref or not request_ref.startswith("ServiceRequest/"):
            continue
        request = named.get(request_ref) or {}
        performer = next((reference_of(p) for p in request.get("performer") or []), None)
        owner = reference_of(task.get("owner"))
        said = _outcomes(task, named)
        referrals.append(
            Referral(
                task=f"Task/{task.get('id')}",
                request=request_ref,
                service=concept_text(request.get("code")) or str(task.get("description") or "referral"),
                partner=_name(named.get(owner or "")) or _name(named.get(performer or "")),
                status=str(task.get("status") or ""),
                status_reason=concept_text(task.get("statusReason")),
                due=(due_of(task) or "")[:10] or None,
                outcome="; ".join(o.text for o in said),
                outcomes=said,
                written=str(task.get("authoredOn") or ""),
                owner=owner,
                extension=tuple(e for e in task.get("extension") or [] if isinstance(e, dict)),
            )
        )
    referrals.sort(key=lambda r: (r.written, r.task), reverse=True)
    closed_rows = [
        ClosedTask(
            task=f"Task/{t.get('id')}",
            what=str(t.get("description") or concept_text(t.get("code")) or "task"),
            status=str(t.get("status") or ""),
            reason=concept_text(t.get("statusReason")),
            ended=str((t.get("executionPeriod") or {}).get("end") or t.get("lastModified") or ""),
        )
        for t in closed
    ]
    closed_rows.sort(key=lambda c: (c.ended, c.task), reverse=True)
    return referrals, closed_rows
