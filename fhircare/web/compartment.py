"""Keeping a patient-launch session inside its patient's compartment.

Two places use it: :class:`PatientGuard`, the access guard a workflow run calls before it writes
(every resource the run read, every entry it plans, every reference those entries carry), and
:func:`only_own_patient`, which takes every resource of another patient out of what the FHIR server
answers to the views (``_include``s included) before a view sees it.

Which resource types belong to a patient, and through which element, follows the FHIR R4 Patient
compartment for the types fhircare reads and writes. Types that hold no patient data (practitioners,
organizations, places, services) are shared; any other type fails closed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from ..errors import ScopeDenied
from ..fhir import FhirClient
from ..mapping import PlannedEntry

OUTSIDE = "this session is limited to its launch patient"

#: resource type -> the elements (dotted paths) that name its patient
PATIENT_ELEMENTS: dict[str, tuple[str, ...]] = {
    "Appointment": ("participant.actor",),
    "CarePlan": ("subject",),
    "CareTeam": ("subject",),
    "Claim": ("patient",),
    "ClaimResponse": ("patient",),
    "Communication": ("subject",),
    "CommunicationRequest": ("subject",),
    "Condition": ("subject",),
    "Consent": ("patient",),
    "Coverage": ("beneficiary",),
    "CoverageEligibilityRequest": ("patient",),
    "CoverageEligibilityResponse": ("patient",),
    "DocumentReference": ("subject",),
    "Encounter": ("subject",),
    "EpisodeOfCare": ("patient",),
    "Flag": ("subject",),
    "Goal": ("subject",),
    "List": ("subject",),
    "Observation": ("subject",),
    "Procedure": ("subject",),
    "Provenance": ("entity.what",),
    "QuestionnaireResponse": ("subject",),
    "RelatedPerson": ("patient",),
    "ServiceRequest": ("subject",),
    "Task": ("for",),
}
#: types that hold no one patient's data
SHARED = frozenset(
    {
        "ActivityDefinition",
        "Endpoint",
        "HealthcareService",
        "Location",
        "Medication",
        "Organization",
        "PlanDefinition",
        "Practitioner",
        "PractitionerRole",
        "Questionnaire",
    }
)
#: answers about the server or the request, not patient data
META = frozenset({"CapabilityStatement", "OperationOutcome", "Parameters"})
LITERAL = re.compile(r"(?:^|/)([A-Z][A-Za-z]{1,63})/([A-Za-z0-9\-.]{1,64})(?:/_history/[^/]+)?$")


def literal(reference: str) -> str | None:
    """``Type/id`` of a relative or absolute literal reference; None for ``urn:``, ``#`` or searches."""
    if "?" in reference or reference.startswith(("urn:", "#")):
        return None
    found = LITERAL.search(reference)
    return f"{found.group(1)}/{found.group(2)}" if found else None


def _values(node: Any, path: list[str]) -> Iterator[Any]:
    if isinstance(node, list):
        for item in node:
            yield from _values(item, path)
    elif not path:
        yield node
    elif isinstance(node, dict) and path[0] in node:
        yield from _values(node[path[0]], path[1:])


def patients_of(resource: Mapping[str, Any]) -> set[str]:
    """The ``Patient/id`` references a resource of a compartment type names as its patient."""
    rtype = str(resource.get("resourceType"))
    if rtype == "Patient":
        return {f"Patient/{resource.get('id')}"}
    found = set()
    for element in PATIENT_ELEMENTS.get(rtype, ()):
        for value in _values(resource, element.split(".")):
            ref = literal(value.get("reference", "")) if isinstance(value, dict) else None
            if ref and ref.startswith("Patient/"):
                found.add(ref)
    return found


def belongs(resource: Mapping[str, Any], patient: str) -> bool:
    """True for shared resources and for resources whose only patient is ``patient``."""
    rtype = resource.get("resourceType")
    if rtype in SHARED or rtype in META:
        return True
    return patients_of(resource) == {patient}


def references_in(node: Any) -> Iterator[str]:
    """Every ``reference`` string inside a resource."""
    if isinstance(node, dict):
        value = node.get("reference")
        if isinstance(value, str):
            yield value
        for child in node.values():
            yield from references_in(child)
    elif isinstance(node, list):
        for child in node:
            yield from references_in(child)


class PatientGuard:
    """The access guard of a patient-launch session (see ``fhircare.workflows.base.AccessGuard``).

    Refuses, with one 403 that names nothing, when a run read, would write, or would reference a
    resource of another patient's compartment. References to compartment resources the run did not
    read are read here, in one batch, only in patient sessions.
    """

    def __init__(self, client: FhirClient, patient: str) -> None:
        self.client = client
        self.patient = patient

    def __call__(self, found: Mapping[str, dict[str, Any]], planned: Sequence[PlannedEntry]) -> None:
        if not all(belongs(resource, self.patient) for resource in found.values()):
            raise ScopeDenied(OUTSIDE)
        known = set(found)
        unread: set[str] = set()
        for entry in planned:
            resource = entry.resource
            own_record = resource.get("resourceType") == "Provenance" and entry.method == "POST"
            if not own_record and not belongs(resource, self.patient):
                raise ScopeDenied(OUTSIDE)
            for value in references_in(resource):
                ref = literal(value)
                if ref is None:
                    if "?" in value:  # a search the guard cannot see through
                        raise ScopeDenied(OUTSIDE)
                    continue
                unread.add(ref)
        self.check_references(unread - known)

    def check_references(self, references: set[str]) -> None:
        """Every named resource of a patient compartment exists and belongs to the session's patient."""
        to_read = set()
        for ref in references:
            rtype = ref.split("/", 1)[0]
            if rtype == "Patient":
                if ref != self.patient:
                    raise ScopeDenied(OUTSIDE)
            elif rtype not in SHARED:
                to_read.add(ref)
        if not to_read:
            return
        for result in self.client.read_batch(sorted(to_read)):
            status = str((result.get("response") or {}).get("status", ""))
            resource = result.get("resource")
            if (
                not status.startswith("2")
                or not isinstance(resource, dict)
                or not belongs(resource, self.patient)
            ):
                raise ScopeDenied(OUTSIDE)


def only_own_patient(node: Any, patient: str) -> Any:
    """``node`` without any resource of another patient (None when ``node`` itself is one).

    Searchsets lose those entries; a batch answer keeps its positions, the entry becoming a 403.
    """
    if not isinstance(node, dict):
        return node
    if node.get("resourceType") != "Bundle":
        return node if belongs(node, patient) else None
    entries = []
    for entry in node.get("entry") or []:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if isinstance(resource, dict):
            kept = only_own_patient(resource, patient)
            if kept is None:
                if "response" in entry:
                    entries.append({"response": {"status": "403 Forbidden"}})
                continue
            entry = {**entry, "resource": kept}
        entries.append(entry)
    return {**node, "entry": entries}


def compartment_filter(patient: str) -> Any:
    """A response hook for the FHIR client's session: every JSON answer passes through
    :func:`only_own_patient`; a single resource of another patient becomes a 403."""

    def hook(response: Any, *args: Any, **kwargs: Any) -> Any:
        kind = response.headers.get("Content-Type", "")
        if response.status_code >= 300 or "json" not in kind or not response.content:
            return response
        try:
            body = json.loads(response.content)
        except ValueError:
            return response
        kept = only_own_patient(body, patient)
        if kept is None:
            raise ScopeDenied(OUTSIDE)
        if kept != body:
            response._content = json.dumps(kept).encode("utf-8")
        return response

    return hook
