"""One patient at a glance, from one ``batch`` of searches (a single request)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from .. import clock
from ..errors import NotFound
from ..fhir import FhirClient
from .authorizations import answer_fields, claim_service, latest_answers
from .labels import concept_text, person_name, reference_of, resource_label
from .worklist import OPEN_STATUSES, due_of

RECENT_COMMUNICATIONS = 10


def summary_searches(patient_id: str) -> list[tuple[str, str]]:
    """(section, relative URL) of every search in the summary batch."""
    ref = f"Patient/{patient_id}"

    def url(rtype: str, **params: str) -> str:
        return f"{rtype}?{urlencode(params, safe='/,:|')}"

    return [
        ("patient", f"Patient/{patient_id}"),
        ("care_plans", url("CarePlan", patient=ref, status="active,draft,on-hold")),
        ("goals", url("Goal", patient=ref)),
        ("tasks", url("Task", patient=ref, status=",".join(OPEN_STATUSES), _count="100")),
        ("appointments", url("Appointment", patient=ref, _sort="date", _count="100")),
        ("coverage", url("Coverage", beneficiary=ref)),
        ("eligibility", url("CoverageEligibilityResponse", patient=ref, _sort="-created")),
        ("prior_auths", url("Claim", patient=ref, use="preauthorization", _count="50")),
        ("payer_answers", url("ClaimResponse", patient=ref, use="preauthorization", _count="100")),
        (
            "communications",
            url("Communication", patient=ref, _sort="-sent", _count=str(RECENT_COMMUNICATIONS)),
        ),
        ("care_teams", url("CareTeam", patient=ref, status="active", _include="CareTeam:participant")),
        ("family", url("RelatedPerson", patient=ref)),
    ]


@dataclass
class PatientSummary:
    patient: str
    name: str
    birth_date: str | None
    gender: str | None
    care_plans: list[dict[str, Any]] = field(default_factory=list)
    open_tasks: list[dict[str, Any]] = field(default_factory=list)
    upcoming_appointments: list[dict[str, Any]] = field(default_factory=list)
    missed_appointments: list[dict[str, Any]] = field(default_factory=list)
    coverage: list[dict[str, Any]] = field(default_factory=list)
    prior_authorizations: list[dict[str, Any]] = field(default_factory=list)
    communications: list[dict[str, Any]] = field(default_factory=list)
    care_team: list[dict[str, Any]] = field(default_factory=list)
    family: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _entries(section: dict[str, Any]) -> list[dict[str, Any]]:
    resource = section.get("resource") or {}
    if resource.get("resourceType") != "Bundle":
        return []
    return [e["resource"] for e in resource.get("entry") or [] if isinstance(e.get("resource"), dict)]


def patient_summary(client: FhirClient, patient: str, now: datetime | None = None) -> PatientSummary:
    """Demographics, active plans with goals and activities, open tasks, appointments, coverage,
    prior authorizations with the payers' answers, recent communications, care team and family.
    One request (two on a server that ignores ``_include``, to name the care team)."""
    now = now or clock.now()
    patient_id = patient.split("/", 1)[1] if "/" in patient else patient
    searches = summary_searches(patient_id)
    answers = client.read_batch(url for _, url in searches)
    sections = dict(zip((name for name, _ in searches), answers, strict=False))
    person = sections["patient"].get("resource") or {}
    if person.get("resourceType") != "Patient":
        raise NotFound(f"Patient/{patient_id} was not found")
    result = PatientSummary(
        patient=f"Patient/{patient_id}",
        name=person_name(person),
        birth_date=person.get("birthDate"),
        gender=person.get("gender"),
    )
    problems = []
    for name, section in sections.items():
        status = str((section.get("response") or {}).get("status", ""))
        if not status.startswith("2"):
            problems.append(f"{name}: the server answered {status or 'nothing'}")
    result.problems = problems
    goals = {f"Goal/{g.get('id')}": g for g in _entries(sections["goals"]) if g.get("resourceType") == "Goal"}
    for plan in _entries(sections["care_plans"]):
        if plan.get("resourceType") != "CarePlan":
            continue
        plan_goals = [goals.get(reference_of(g) or "") for g in plan.get("goal") or []]
        result.care_plans.append(
            {
                "reference": f"CarePlan/{plan.get('id')}",
                "title": plan.get("title") or concept_text(plan.get("category")) or "care plan",
                "status": plan.get("status"),
                "goals": [
                    {
                        "description": concept_text(g.get("description")),
                        "status": g.get("lifecycleStatus"),
                        "due": _goal_due(g),
                    }
                    for g in plan_goals
                    if g
                ],
                "activities": [_activity_label(a) for a in plan.get("activity") or []],
            }
        )
    for task in _entries(sections["tasks"]):
        if task.get("resourceType") == "Task":
            result.open_tasks.append(
                {
                    "reference": f"Task/{task.get('id')}",
                    "what": task.get("description") or concept_text(task.get("code")),
                    "status": task.get("status"),
                    "due": (due_of(task) or "")[:10] or None,
                    "owner": reference_of(task.get("owner")),
                }
            )
    stamp = now.isoformat()
    for appointment in _entries(sections["appointments"]):
        if appointment.get("resourceType") != "Appointment":
            continue
        row = {
            "reference": f"Appointment/{appointment.get('id')}",
            "start": appointment.get("start"),
            "status": appointment.get("status"),
            "what": resource_label(appointment),
        }
        if appointment.get("status") == "noshow":
            result.missed_appointments.append(row)
        elif (
            appointment.get("status") in ("booked", "pending", "proposed", "arrived")
            and str(appointment.get("start", "")) >= stamp[:19]
        ):
            result.upcoming_appointments.append(row)
    eligibility = {}
    for response in _entries(sections["eligibility"]):
        for insurance in response.get("insurance") or []:
            coverage_ref = reference_of(insurance.get("coverage"))
            if coverage_ref and coverage_ref not in eligibility:
                eligibility[coverage_ref] = response.get("outcome") or response.get("disposition")
    for coverage in _entries(sections["coverage"]):
        if coverage.get("resourceType") != "Coverage":
            continue
        ref = f"Coverage/{coverage.get('id')}"
        period = coverage.get("period") or {}
        result.coverage.append(
            {
                "reference": ref,
                "status": coverage.get("status"),
                "payor": ", ".join(
                    filter(None, (reference_of(p) or p.get("display") for p in coverage.get("payor") or []))
                ),
                "ends": period.get("end"),
                "expired": bool(period.get("end") and str(period["end"])[:10] < now.date().isoformat()),
                "eligibility": eligibility.get(ref),
            }
        )
    result.prior_authorizations = _prior_authorizations(sections["prior_auths"], sections["payer_answers"])
    for message in _entries(sections["communications"]):
        if message.get("resourceType") == "Communication":
            result.communications.append(
                {
                    "reference": f"Communication/{message.get('id')}",
                    "sent": message.get("sent"),
                    "topic": concept_text(message.get("topic")) or concept_text(message.get("category")),
                    "status": message.get("status"),
                }
            )
    team_members = {}
    for resource in _entries(sections["care_teams"]):
        if resource.get("resourceType") != "CareTeam":
            team_members[f"{resource.get('resourceType')}/{resource.get('id')}"] = resource
    teams = [t for t in _entries(sections["care_teams"]) if t.get("resourceType") == "CareTeam"]
    members = (reference_of(p.get("member")) for t in teams for p in t.get("participant") or [])
    missing = sorted({m for m in members if m and m.count("/") == 1 and m not in team_members})
    team_members.update(client.read_found(missing))  # a server that ignores _include: one batch, only then
    for team in teams:
        for participant in team.get("participant") or []:
            member = reference_of(participant.get("member"))
            result.care_team.append(
                {
                    "member": member,
                    "name": person_name(team_members.get(member or "")) if member else "",
                    "role": concept_text(participant.get("role")),
                }
            )
    for relative in _entries(sections["family"]):
        if relative.get("resourceType") == "RelatedPerson":
            phones = [t.get("value") for t in relative.get("telecom") or [] if t.get("system") == "phone"]
            result.family.append(
                {
                    "reference": f"RelatedPerson/{relative.get('id')}",
                    "name": person_name(relative),
                    "relationship": concept_text(relative.get("relationship")),
                    "phone": phones[0] if phones else None,
                }
            )
    return result


def _prior_authorizations(claims: dict[str, Any], answers: dict[str, Any]) -> list[dict[str, Any]]:
    """Each preauthorization Claim, newest first, with the payer's latest answer to it."""
    latest = latest_answers(_entries(answers))
    rows = []
    for claim in _entries(claims):
        if claim.get("resourceType") != "Claim":
            continue
        ref = f"Claim/{claim.get('id')}"
        rows.append(
            {
                "claim": ref,
                "service": claim_service(claim),
                "requested": str(claim.get("created") or "")[:10] or None,
                "insurer": reference_of(claim.get("insurer")),
                **answer_fields(latest.get(ref)),
            }
        )
    return sorted(rows, key=lambda r: r["requested"] or "", reverse=True)


def _goal_due(goal: dict[str, Any]) -> str | None:
    for target in goal.get("target") or []:
        if isinstance(target, dict) and target.get("dueDate"):
            return str(target["dueDate"])
    return None


def _activity_label(activity: dict[str, Any]) -> str:
    ref = reference_of(activity.get("reference"))
    if ref:
        return ref
    detail = activity.get("detail") or {}
    return concept_text(detail.get("code")) or str(detail.get("description") or "activity")
