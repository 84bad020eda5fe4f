"""Pickers: the practitioners, roles, organizations, locations and services a form offers by name, so a
coordinator never types a resource id. One search per type (with ``_include`` where a label needs
another resource), at most ``LIMIT`` choices, labelled the way the views label them."""

from __future__ import annotations

from typing import Any

from ..errors import FhircareError, PayloadError
from ..fhir import FhirClient
from ..views.directory import address_text, entry_of
from ..views.labels import concept_text, person_name, reference_of, resource_label
from ..views.related import related_resources

LIMIT = 100
#: type -> (search parameter matching a name, or None to filter labels here; _include for the label)
KINDS: dict[str, tuple[str | None, str | None]] = {
    "Practitioner": ("name", None),
    "PractitionerRole": (None, "PractitionerRole:practitioner"),
    "Organization": ("name", None),
    "Location": ("name", None),
    "HealthcareService": ("name", "HealthcareService:organization"),
}


def label_of(resource: dict[str, Any], related: dict[str, dict[str, Any]]) -> str:
    kind = resource.get("resourceType")
    if kind == "Practitioner":
        return person_name(resource)
    if kind == "PractitionerRole":
        who = person_name(related.get(reference_of(resource.get("practitioner")) or ""))
        role = ", ".join(
            str(c.get("text") or "") for c in resource.get("code") or [] if isinstance(c, dict)
        ).strip(", ")
        return f"{who} ({role})" if who and role else who or role or f"PractitionerRole/{resource.get('id')}"
    if kind == "Location":
        return address_text(resource) or f"Location/{resource.get('id')}"
    if kind == "HealthcareService":
        return entry_of(resource, related).label()
    return str(resource.get("name") or f"{kind}/{resource.get('id')}")


def search_choices(client: FhirClient, kind: str, name: str = "") -> list[dict[str, str]]:
    """``[{reference, label}]`` of ``kind`` whose label holds ``name`` (case-insensitive), by label."""
    if kind not in KINDS:
        raise PayloadError(f"type must be one of {', '.join(sorted(KINDS))}")
    parameter, include = KINDS[kind]
    name = name.strip()[:100]
    params: list[tuple[str, str]] = [("_count", str(LIMIT))]
    if parameter and name:
        params.append((parameter, name))
    use_include = bool(include) and client.include_works(kind, include or "")
    if include and use_include:
        params.append(("_include", include))
    page = next(iter(client.search(kind, params).pages()), None)
    if page is None:
        return []
    wanted = (reference_of(r.get("practitioner") or r.get("providedBy")) for r in page.matches if include)
    related = related_resources(client, page, wanted, use_include) if include else {}
    found = []
    for resource in page.matches:
        label = label_of(resource, related)
        if name and name.lower() not in label.lower():
            continue
        row = {"reference": f"{kind}/{resource['id']}", "label": label}
        person = reference_of(resource.get("practitioner")) if kind == "PractitionerRole" else None
        if person:
            row["person"] = person  # the practitioner a role is held by: a picker names each person once
        found.append(row)
    return sorted(found, key=lambda c: c["label"].lower())


#: the patient's own resources a form may point at: kind -> search (one batch for all)
OWN = {
    "CarePlan": "CarePlan?patient={p}&status=active,draft,on-hold",
    "ServiceRequest": "ServiceRequest?patient={p}&status=active,draft,on-hold&_count=50",
    "Appointment": "Appointment?patient={p}&_count=50",
    "Task": "Task?patient={p}&status=draft,requested,received,accepted,ready,in-progress,on-hold&_count=50",
    "Coverage": "Coverage?beneficiary={p}",
    "RelatedPerson": "RelatedPerson?patient={p}",
}


def own_label(resource: dict[str, Any]) -> str:
    kind = resource.get("resourceType")
    status = resource.get("status")
    if kind == "CarePlan":
        text = str(resource.get("title") or concept_text(resource.get("category")) or "care plan")
    elif kind == "Coverage":
        text = f"coverage {resource.get('subscriberId') or ''}".strip()
    elif kind == "Task":
        text = str(resource.get("description") or concept_text(resource.get("code")) or "task")
    elif kind == "RelatedPerson":
        text = f"{person_name(resource)} ({concept_text(resource.get('relationship'))})"
        status = None
    else:
        text = resource_label(resource)
    return f"{text} ({status})" if status else text


def patient_choices(client: FhirClient, patient: str) -> dict[str, list[dict[str, str]]]:
    """The patient and their plans, referrals, appointments, open tasks, coverage and family, labelled,
    from one batch of searches."""
    kinds = list(OWN)
    answers = client.read_batch(OWN[k].format(p=patient) for k in kinds)
    found: dict[str, list[dict[str, str]]] = {}
    for kind, entry in zip(kinds, answers, strict=False):
        bundle = entry.get("resource") or {}
        rows = [
            e["resource"]
            for e in bundle.get("entry") or []
            if isinstance(e.get("resource"), dict) and e["resource"].get("resourceType") == kind
        ]
        found[kind] = [
            {
                "reference": f"{kind}/{r['id']}",
                "label": own_label(r),
                **(
                    {"payor": payor}
                    if (payor := reference_of(next(iter(r.get("payor") or []), None)))
                    else {}
                ),
            }
            for r in rows
        ]
    return found


#: care-team members a task may be handed to (a patient or a relative on the team is no task owner here)
TEAM_MEMBERS = ("Practitioner/", "PractitionerRole/", "Organization/", "CareTeam/")


def care_teams(client: FhirClient, patients: set[str]) -> dict[str, list[dict[str, str]]]:
    """Patient -> the members of their active care teams, by name: one search for all the patients
    (members included; one more batch where the server ignores ``_include``). Empty when the caller
    may not read care teams."""
    if not patients:
        return {}
    include = "CareTeam:participant"
    use_include = client.include_works("CareTeam", include)
    params = [("patient", ",".join(sorted(patients))), ("status", "active"), ("_count", "200")]
    if use_include:
        params.append(("_include", include))
    found: dict[str, list[dict[str, str]]] = {}
    try:
        for page in client.search("CareTeam", params).pages():
            teams = [t for t in page.matches if t.get("resourceType") == "CareTeam"]
            members = (reference_of(p.get("member")) for t in teams for p in t.get("participant") or [])
            related = related_resources(client, page, members, use_include)
            for team in teams:
                patient = reference_of(team.get("subject"))
                rows = found.setdefault(patient or "", [])
                for participant in team.get("participant") or []:
                    member = reference_of(participant.get("member"))
                    if (
                        member
                        and member.startswith(TEAM_MEMBERS)
                        and member not in {r["reference"] for r in rows}
                    ):
                        resource = related.get(member)
                        label = label_of(resource, related) if resource else member
                        role = concept_text(participant.get("role"))
                        rows.append({"reference": member, "label": f"{label} ({role})" if role else label})
    except FhircareError as exc:
        if exc.status == 401:
            raise
        return {}
    return found
