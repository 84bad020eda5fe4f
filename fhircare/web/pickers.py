"""Pickers: the practitioners, roles, organizations, locations and services a form offers by name, so a
coordinator never types a resource id. One search per type (with ``_include`` where a label needs
another resource), at most ``LIMIT`` choices, labelled the way the views label them."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from ..errors import FhircareError, PayloadError
from ..fhir import FhirClient
from ..fhir.entries import entry_error
from ..fhir.ratelimit import status_code
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


#: Organization.type (http://terminology.hl7.org/CodeSystem/organization-type) of one that pays for care
ORG_TYPE = "http://terminology.hl7.org/CodeSystem/organization-type"
PAYER_TYPES = ("pay", "ins")
#: the latest coverages and rides read to learn which organizations paid or drove
SEEN = 200


def _query(kind: str, params: list[tuple[str, str]]) -> str:
    return f"{kind}?{urlencode(params)}"


def _answered(entry: dict[str, Any], what: str) -> list[dict[str, Any]]:
    """The resources of one searchset answered in a batch; none when the caller may not search it."""
    code = status_code(entry) or 200
    if not 200 <= code < 300:
        if code in (401, 429) or code >= 500:
            raise entry_error(what, entry)
        return []  # a search these credentials may not make, or a parameter the server does not know
    bundle = entry.get("resource") or {}
    return [e["resource"] for e in bundle.get("entry") or [] if isinstance(e.get("resource"), dict)]


def role_searches(client: FhirClient, role: str, ride: tuple[str, str]) -> list[str]:
    """The searches that name the organizations able to play ``role`` (``payer`` or ``vendor``)."""
    if role == "payer":
        types = ",".join(f"{ORG_TYPE}|{code}" for code in PAYER_TYPES)
        return [
            _query("Organization", [("type", types), ("_count", str(LIMIT))]),
            _query("Coverage", [("_count", str(SEEN)), ("_sort", "-_lastUpdated")]),
        ]
    system, code = ride
    services = [("service-type", f"{system}|{code}"), ("_count", str(LIMIT))]
    if client.include_works("HealthcareService", "HealthcareService:organization"):
        services.append(("_include", "HealthcareService:organization"))
    return [
        _query("HealthcareService", services),
        _query(
            "ServiceRequest",
            [("code", f"{system}|{code}"), ("_count", str(SEEN)), ("_sort", "-_lastUpdated")],
        ),
    ]


def role_organizations(
    client: FhirClient, role: str, ride: tuple[str, str] = ("", "")
) -> list[dict[str, str]]:
    """``[{reference, label}]`` of the organizations that can play ``role``, by label.

    A payer is an Organization typed ``pay`` or ``ins``, or the payor of one of the latest coverages; a
    ride vendor provides a HealthcareService of the ride's service type (``ride``: system, code), or
    performed one of the latest rides. One batch of searches, and one batch of reads for organizations
    only referenced (none when every one came back in the searches)."""
    found: dict[str, dict[str, Any]] = {}
    named: set[str] = set()
    for entry in client.read_batch(role_searches(client, role, ride)):
        for resource in _answered(entry, f"searching the {role}s"):
            kind = resource.get("resourceType")
            if kind == "Organization":
                found[f"Organization/{resource.get('id')}"] = resource
            held = resource.get("payor") or resource.get("performer") or [resource.get("providedBy")]
            named.update(
                ref
                for r in (held if isinstance(held, list) else [])
                if (ref := reference_of(r)) and ref.startswith("Organization/") and ref.count("/") == 1
            )
    found.update(client.read_found(sorted(named - set(found))[:LIMIT]))
    rows = [{"reference": ref, "label": label_of(res, {})} for ref, res in found.items()]
    return sorted(rows, key=lambda r: r["label"].lower())


#: practitioners a "who are you" page lists at a time
PEOPLE_PAGE = 20


def find_practitioners(
    client: FhirClient, name: str = "", page: int = 1, page_size: int = PEOPLE_PAGE
) -> tuple[list[dict[str, str]], bool]:
    """One page of the practitioners whose name holds every word of ``name`` (all when empty), sorted by
    name (``Practitioner?name=&_sort=family,given&_count=``), and whether another page follows: one
    request for the first page, page ``n`` the requests of pages 1..n (next links or ``_offset``)."""
    params = [("name", word) for word in name.strip()[:100].split()[:4]]
    # one more than a page: the extra match says another page follows, without asking for it
    params += [("_sort", "family,given"), ("_count", str(page_size + 1))]
    skip = (max(page, 1) - 1) * page_size
    found: list[dict[str, Any]] = []
    for chunk in client.search("Practitioner", params).pages():
        found += chunk.matches
        if len(found) > skip + page_size:
            break
    more = len(found) > skip + page_size
    return [
        {"reference": f"Practitioner/{p['id']}", "label": person_name(p), "detail": _identifier(p)}
        for p in found[skip : skip + page_size]
    ], more


def _identifier(person: dict[str, Any]) -> str:
    """What tells two people of one name apart: their first identifier's value (an NPI)."""
    for identifier in person.get("identifier") or []:
        if isinstance(identifier, dict) and identifier.get("value"):
            return str(identifier["value"])
    return ""
