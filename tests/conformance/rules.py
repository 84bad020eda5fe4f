"""The implementation guides' rules fhircare follows, as checks on written resources.

Each rule names the guide, its version, the profile and the element it comes from (transcribed from
the guides' StructureDefinitions / FSH: US Core 7.0.0, SDOH Clinical Care 3.0.0, Da Vinci PAS 2.2.1,
and the FHIR R4 4.0.1 resource definitions). A rule's ``check`` returns one message per problem found
in one resource; ``severity`` is the guide's (error: a validator refuses it; warning: a SHOULD).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .written import Written

US_CORE = ("US Core", "7.0.0")
SDOHCC = ("SDOH Clinical Care", "3.0.0")
PAS = ("Da Vinci PAS", "2.2.1")
R4 = ("FHIR R4", "4.0.1")

TASK_CODE = "http://hl7.org/fhir/CodeSystem/task-code"
SDOHCC_CODES = "http://hl7.org/fhir/us/sdoh-clinicalcare/CodeSystem/SDOHCC-CodeSystemTemporaryCodes"
SNOMED = "http://snomed.info/sct"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
US_CORE_CAREPLAN_CATEGORY = "http://hl7.org/fhir/us/core/CodeSystem/careplan-category"

# X12278RequestedServiceType (PAS 2.2.1 Terminology.fsh): the systems its codes come from
PAS_SERVICE_SYSTEMS = {
    "http://terminology.hl7.org/CodeSystem/data-absent-reason",
    "https://codesystem.x12.org/005010/1365",
    "http://www.ama-assn.org/go/cpt",
    "http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets",
    "http://terminology.hl7.org/CodeSystem/icd9cm",
    "http://www.cms.gov/Medicare/Coding/ICD10",
    "http://hl7.org/fhir/sid/ndc",
}
# X12278DiagnosisCodes
PAS_DIAGNOSIS_SYSTEMS = {
    "http://terminology.hl7.org/CodeSystem/icd9cm",
    "http://hl7.org/fhir/sid/icd-10-cm",
    "https://www.cms.gov/Medicare/Medicare-Fee-for-Service-Payment/AcuteInpatientPPS/MS-DRG-Classifications-and-Software",
    "http://uri.hddaccess.com/cs/apdrg",
    "http://uri.hddaccess.com/cs/aprdrg",
}
# X12278LocationType
PAS_LOCATION_SYSTEMS = {
    "https://www.nubc.org/CodeSystem/TypeOfBill",
    "https://www.cms.gov/Medicare/Coding/place-of-service-codes/Place_of_Service_Code_Set",
}
PAS_REQUEST_TYPE = "http://hl7.org/fhir/us/davinci-pas/StructureDefinition/extension-serviceItemRequestType"
PAS_CERTIFICATION_TYPE = "http://hl7.org/fhir/us/davinci-pas/StructureDefinition/extension-certificationType"

# SNOMED CT findings and services of an SDOH domain -> the SDOHCC category a request for them carries
# (the SDOHCC 3.0.0 additional bindings of ServiceRequest.code per category name these domains)
SDOH_DOMAIN_OF = {
    "733423003": "food-insecurity",  # Food insecurity (finding)
    "467771000124109": "food-insecurity",  # Assistance with application for food pantry program
    "32911000": "homelessness",  # Homeless (finding)
}

# FHIR R4 Task state machine (http://hl7.org/fhir/R4/task.html#statemachine); on-hold only once work started
R4_TASK_NEXT = {
    "draft": {"requested", "cancelled"},
    "requested": {"received", "accepted", "rejected", "ready", "cancelled"},
    "received": {"accepted", "rejected", "cancelled"},
    "accepted": {"ready", "in-progress", "cancelled"},
    "ready": {"in-progress", "on-hold", "failed", "completed", "cancelled"},
    "in-progress": {"on-hold", "failed", "completed", "cancelled"},
    "on-hold": {"in-progress", "ready", "failed", "cancelled"},
}

# the profile each kind of resource fhircare writes is built to (docs/conformance.md has the same table)
US_CORE_SD = "http://hl7.org/fhir/us/core/StructureDefinition/"
SDOHCC_SD = "http://hl7.org/fhir/us/sdoh-clinicalcare/StructureDefinition/"
PAS_SD = "http://hl7.org/fhir/us/davinci-pas/StructureDefinition/"

Check = Callable[[dict[str, Any], Written], list[str]]


@dataclass(frozen=True)
class Rule:
    id: str
    guide: tuple[str, str]
    profile: str
    element: str
    severity: str
    what: str
    resource_type: str
    check: Check

    @property
    def source(self) -> str:
        return f"{self.guide[0]} {self.guide[1]} {self.profile} {self.element}"


def codes(concept: Any, system: str | None = None) -> list[str]:
    """The codes of a CodeableConcept (optionally only those of ``system``)."""
    if not isinstance(concept, dict):
        return []
    return [
        str(c.get("code"))
        for c in concept.get("coding") or []
        if isinstance(c, dict) and (system is None or c.get("system") == system)
    ]


def ref(value: Any) -> str | None:
    found = value.get("reference") if isinstance(value, dict) else None
    return found if isinstance(found, str) else None


def is_referral_task(task: dict[str, Any], written: Written) -> bool:
    """A Task fulfilling a ServiceRequest: the SDOHCC Task For Referral Management."""
    return "fulfill" in codes(task.get("code"), TASK_CODE) and written.type_of(ref(task.get("focus"))) == (
        "ServiceRequest"
    )


# ---- the checks -----------------------------------------------------------------------------------


def _referral_task_requester(task: dict[str, Any], written: Written) -> list[str]:
    if not is_referral_task(task, written):
        return []
    kind = written.type_of(ref(task.get("requester")))
    return [] if kind in ("PractitionerRole", "Organization") else [f"requester is a {kind}"]


def _provenance_on_behalf_of(provenance: dict[str, Any], written: Written) -> list[str]:
    problems = []
    for i, agent in enumerate(provenance.get("agent") or []):
        kind = written.type_of(ref(agent.get("who")))
        if kind in ("Practitioner", "Device") and not agent.get("onBehalfOf"):
            problems.append(f"agent[{i}].who is a {kind} without onBehalfOf")
    return problems


def _fulfill_has_focus(task: dict[str, Any], written: Written) -> list[str]:
    if "fulfill" in codes(task.get("code"), TASK_CODE) and not task.get("focus"):
        return ["coded fulfill with no focus request to fulfil"]
    return []


def _claim_product_or_service(claim: dict[str, Any], written: Written) -> list[str]:
    problems = []
    for item in claim.get("item") or []:
        systems = {c.get("system") for c in (item.get("productOrService") or {}).get("coding") or []}
        if not systems & PAS_SERVICE_SYSTEMS:
            problems.append(f"item {item.get('sequence')}: productOrService from {sorted(map(str, systems))}")
    return problems


def _claim_provider(claim: dict[str, Any], written: Written) -> list[str]:
    kind = written.type_of(ref(claim.get("provider")))
    return [] if kind in ("Organization", "PractitionerRole") else [f"provider is a {kind}"]


def _claim_identifier(claim: dict[str, Any], written: Written) -> list[str]:
    found = [i for i in claim.get("identifier") or [] if i.get("system") and i.get("value")]
    return [] if 1 <= len(found) <= 2 else [f"{len(found)} identifiers (1..2 required)"]


def _item_check(name: str, test: Callable[[dict[str, Any]], bool]) -> Check:
    def check(claim: dict[str, Any], written: Written) -> list[str]:
        items = claim.get("item") or []
        if not items:
            return ["no item"]
        return [f"item {item.get('sequence')}: no {name}" for item in items if not test(item)]

    return check


def _extension(item: dict[str, Any], url: str) -> bool:
    return sum(1 for e in item.get("extension") or [] if e.get("url") == url) == 1


def _claim_diagnosis(claim: dict[str, Any], written: Written) -> list[str]:
    problems = []
    for diagnosis in claim.get("diagnosis") or []:
        concept = diagnosis.get("diagnosisCodeableConcept") or {}
        systems = {c.get("system") for c in concept.get("coding") or []}
        if not systems & PAS_DIAGNOSIS_SYSTEMS:
            problems.append(f"diagnosis {diagnosis.get('sequence')}: from {sorted(map(str, systems))}")
    return problems


def _coverage_member_id(coverage: dict[str, Any], written: Written) -> list[str]:
    member = [i for i in coverage.get("identifier") or [] if "MB" in codes(i.get("type"), V2_0203)]
    return [] if len(member) == 1 else [f"{len(member)} member-id identifiers (type MB)"]


def _coverage_relationship(coverage: dict[str, Any], written: Written) -> list[str]:
    return [] if coverage.get("relationship") else ["no relationship"]


def _task_transitions(task: dict[str, Any], written: Written) -> list[str]:
    key = next((r for r in written.task_statuses if written.resolve(r) is task), f"Task/{task.get('id')}")
    statuses = written.task_statuses.get(key) or []
    steps = list(zip(statuses, statuses[1:], strict=False))
    problems = []
    for i, (before, after) in enumerate(steps):
        if key in written.undone and i == len(steps) - 1 and before == "completed":
            continue  # undo-complete: a completion taken back within its window (the workflow checks it)
        if before != after and after != "entered-in-error" and after not in R4_TASK_NEXT.get(before, set()):
            problems.append(f"{before} -> {after}")
    return problems


_LIVE_APPOINTMENT = ("proposed", "pending", "booked", "arrived", "checked-in", "waitlist")


def _reminder_current(request: dict[str, Any], written: Written) -> list[str]:
    if "reminder" not in [c for cat in request.get("category") or [] for c in codes(cat)]:
        return []
    if request.get("status") != "active":
        return []
    problems = []
    for about in request.get("about") or []:
        appointment = written.resolve(ref(about))
        if appointment and appointment.get("status") not in _LIVE_APPOINTMENT:
            problems.append(f"active reminder about a {appointment.get('status')} Appointment")
    when, written_on = request.get("occurrenceDateTime"), request.get("authoredOn")
    if when and written_on and _moment(when) < _moment(written_on):
        problems.append(f"reminder due {when}, before it was written ({written_on})")
    return problems


def _moment(value: str) -> datetime:
    text = value.replace("Z", "+00:00")
    return datetime.fromisoformat(text if "T" in text else text + "T00:00:00+00:00")


def _app_4(appointment: dict[str, Any], written: Written) -> list[str]:
    # R4 app-4 as published: cancelationReason.exists() implies (status='no-show' or status='cancelled')
    if appointment.get("cancelationReason") and appointment.get("status") not in ("no-show", "cancelled"):
        return [f"cancelationReason on a {appointment.get('status')} Appointment"]
    return []


def _sdoh_category(request: dict[str, Any], written: Written) -> list[str]:
    found = {
        SDOH_DOMAIN_OF[code]
        for concept in [request.get("code"), *(request.get("reasonCode") or [])]
        for code in codes(concept, SNOMED)
        if code in SDOH_DOMAIN_OF
    }
    present = {code for cat in request.get("category") or [] for code in codes(cat, SDOHCC_CODES)}
    return [f"no SDOHCC category {domain}" for domain in sorted(found - present)]


def _service_request_code(request: dict[str, Any], written: Written) -> list[str]:
    return [] if codes(request.get("code")) else ["code has no coding"]


def _referral_output(task: dict[str, Any], written: Written) -> list[str]:
    if not is_referral_task(task, written) or task.get("status") != "completed":
        return []
    typed = [
        o for o in task.get("output") or [] if "resulting-activity" in codes(o.get("type"), SDOHCC_CODES)
    ]
    return [] if typed else ["completed referral Task with no resulting-activity output"]


def _required(element: str) -> Check:
    def check(resource: dict[str, Any], written: Written) -> list[str]:
        return [] if resource.get(element) else [f"no {element}"]

    return check


def _status_reason_current(task: dict[str, Any], written: Written) -> list[str]:
    if task.get("statusReason") and task.get("status") not in ("rejected", "cancelled", "on-hold", "failed"):
        return [f"statusReason kept on a {task.get('status')} Task"]
    return []


def _assess_plan(plan: dict[str, Any], written: Written) -> list[str]:
    categories = {c for cat in plan.get("category") or [] for c in codes(cat, US_CORE_CAREPLAN_CATEGORY)}
    return [] if "assess-plan" in categories else ["no assess-plan category"]


def _narrative(resource: dict[str, Any], written: Written) -> list[str]:
    text = resource.get("text") or {}
    if not text.get("div") or not text.get("status"):
        return ["no narrative"]
    return []


def _snomed_displays(resource: dict[str, Any], written: Written) -> list[str]:
    problems = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("system") == SNOMED and node.get("code") in CHECKED_SNOMED_DISPLAYS:
                if node.get("display") not in CHECKED_SNOMED_DISPLAYS[str(node["code"])]:
                    problems.append(f"SNOMED {node['code']} displayed as {node.get('display')!r}")
            for child in node.values():
                walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(resource)
    return problems


# displays as the R4 specification's own examples give them (r4spec-ServiceRequest-education.json)
CHECKED_SNOMED_DISPLAYS = {"311401005": {"Patient education (procedure)", "Patient education"}}


def _no_urn_namespaces(resource: dict[str, Any], written: Written) -> list[str]:
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            system = node.get("system")
            if isinstance(system, str) and system.startswith("urn:fhircare:"):
                found.add(system)
            for child in node.values():
                walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(resource)
    return [f"unregistered namespace {s}" for s in sorted(found)]


def _declares_profile(resource: dict[str, Any], written: Written) -> list[str]:
    return [] if (resource.get("meta") or {}).get("profile") else ["no meta.profile"]


def _appointment_shape(appointment: dict[str, Any], written: Written) -> list[str]:
    if appointment.get("status") == "cancelled" and not appointment.get("serviceType"):
        return []  # a cancelled copy read back from before the change
    missing = [e for e in ("serviceType", "appointmentType") if not appointment.get(e)]
    untyped = [i for i, p in enumerate(appointment.get("participant") or []) if not p.get("type")]
    untyped = [
        i for i in untyped if written.type_of(ref((appointment["participant"][i]).get("actor"))) != "Patient"
    ]
    return [f"no {e}" for e in missing] + [f"participant[{i}] has no type" for i in untyped]


def _coverage_shape(coverage: dict[str, Any], written: Written) -> list[str]:
    return [f"no {e}" for e in ("type", "class", "period") if not coverage.get(e)]


def _goal_achievement(goal: dict[str, Any], written: Written) -> list[str]:
    return [] if goal.get("achievementStatus") else ["no achievementStatus"]


def _condition_sdoh_category(condition: dict[str, Any], written: Written) -> list[str]:
    domains = {SDOH_DOMAIN_OF[c] for c in codes(condition.get("code"), SNOMED) if c in SDOH_DOMAIN_OF}
    present = {c for cat in condition.get("category") or [] for c in codes(cat, SDOHCC_CODES)}
    return [f"no SDOHCC category {d}" for d in sorted(domains - present)]


def _practitioner_role(role: dict[str, Any], written: Written) -> list[str]:
    problems = [f"no {e}" for e in ("practitioner", "organization") if not role.get(e)]
    if not role.get("telecom") and not role.get("endpoint"):
        problems.append("pd-1: neither telecom nor endpoint")
    return problems


RULES: tuple[Rule, ...] = (
    Rule(
        "sdohcc-referral-task-requester",
        SDOHCC,
        "SDOHCCTaskForReferralManagement",
        "Task.requester",
        "error",
        "only Reference(SDOHCCPractitionerRole | USCoreOrganizationProfile)",
        "Task",
        _referral_task_requester,
    ),
    Rule(
        "uscore-provenance-1",
        US_CORE,
        "USCoreProvenance",
        "Provenance.agent (provenance-1)",
        "error",
        "onBehalfOf SHALL be present when agent.who is a Practitioner or Device",
        "Provenance",
        _provenance_on_behalf_of,
    ),
    Rule(
        "r4-task-fulfill-focus",
        R4,
        "Task",
        "Task.code (task-code#fulfill) / Task.focus",
        "error",
        "'fulfill' means fulfilling the focal request: a Task coded fulfill has a focus",
        "Task",
        _fulfill_has_focus,
    ),
    Rule(
        "pas-claim-product-or-service",
        PAS,
        "PASClaim",
        "Claim.item.productOrService",
        "error",
        "from X12278RequestedServiceType (required): CPT, HCPCS, ICD-10-PCS, ICD-9, X12 1365, NDC",
        "Claim",
        _claim_product_or_service,
    ),
    Rule(
        "pas-claim-provider",
        PAS,
        "PASClaim",
        "Claim.provider",
        "error",
        "only Reference(PASRequestor | PASPractitionerRole)",
        "Claim",
        _claim_provider,
    ),
    Rule(
        "pas-claim-identifier",
        PAS,
        "PASClaim",
        "Claim.identifier",
        "error",
        "1..2 PASIdentifier (system, value)",
        "Claim",
        _claim_identifier,
    ),
    Rule(
        "pas-claim-item-category",
        PAS,
        "PASClaim",
        "Claim.item.category",
        "error",
        "1..1 (X12 1365)",
        "Claim",
        _item_check("category", lambda item: bool(item.get("category"))),
    ),
    Rule(
        "pas-claim-item-location",
        PAS,
        "PASClaim",
        "Claim.item.location[x]",
        "error",
        "1..1 CodeableConcept from X12278LocationType",
        "Claim",
        _item_check(
            "locationCodeableConcept",
            lambda item: bool(
                {c.get("system") for c in (item.get("locationCodeableConcept") or {}).get("coding") or []}
                & PAS_LOCATION_SYSTEMS
            ),
        ),
    ),
    Rule(
        "pas-claim-item-request-type",
        PAS,
        "PASClaim",
        "Claim.item.extension[requestType]",
        "error",
        "1..1",
        "Claim",
        _item_check("requestType extension", lambda item: _extension(item, PAS_REQUEST_TYPE)),
    ),
    Rule(
        "pas-claim-item-certification-type",
        PAS,
        "PASClaim",
        "Claim.item.extension[certificationType]",
        "error",
        "1..1",
        "Claim",
        _item_check("certificationType extension", lambda item: _extension(item, PAS_CERTIFICATION_TYPE)),
    ),
    Rule(
        "pas-claim-diagnosis",
        PAS,
        "PASClaimBase",
        "Claim.diagnosis.diagnosisCodeableConcept",
        "error",
        "from X12278DiagnosisCodes (required): ICD-10-CM, ICD-9-CM, DRG",
        "Claim",
        _claim_diagnosis,
    ),
    Rule(
        "pas-coverage-member-id",
        PAS,
        "PASCoverage",
        "Coverage.identifier:memberid",
        "error",
        "1..1, type v2-0203#MB (US Core 7.0.0 slice)",
        "Coverage",
        _coverage_member_id,
    ),
    Rule(
        "uscore-coverage-relationship",
        US_CORE,
        "USCoreCoverageProfile",
        "Coverage.relationship",
        "error",
        "1..1",
        "Coverage",
        _coverage_relationship,
    ),
    Rule(
        "r4-task-state-machine",
        R4,
        "Task",
        "Task.status (state machine)",
        "error",
        "each status change follows the R4 Task state machine (on-hold only once work started)",
        "Task",
        _task_transitions,
    ),
    Rule(
        "r4-reminder-current",
        R4,
        "CommunicationRequest",
        "CommunicationRequest.status / occurrence[x]",
        "error",
        "a reminder stays active only for an appointment still to come, and is not overdue when written",
        "CommunicationRequest",
        _reminder_current,
    ),
    Rule(
        "r4-app-4",
        R4,
        "Appointment",
        "Appointment.cancelationReason (app-4)",
        "error",
        "cancelationReason only on cancelled (or, literally, 'no-show') Appointments",
        "Appointment",
        _app_4,
    ),
    Rule(
        "sdohcc-servicerequest-category",
        SDOHCC,
        "SDOHCCServiceRequest",
        "ServiceRequest.category:SDOHCC",
        "warning",
        "a request in an SDOH domain carries that SDOHCC category",
        "ServiceRequest",
        _sdoh_category,
    ),
    Rule(
        "uscore-servicerequest-code",
        US_CORE,
        "USCoreServiceRequestProfile",
        "ServiceRequest.code",
        "error",
        "1..1, bound to US Core Procedure Codes: a coded concept, not text only",
        "ServiceRequest",
        _service_request_code,
    ),
    Rule(
        "sdohcc-referral-task-output",
        SDOHCC,
        "SDOHCCTaskForReferralManagement",
        "Task.output:PerformedActivityReference|PerformedActivityCode",
        "warning",
        "a completed referral says what was done (output type resulting-activity)",
        "Task",
        _referral_output,
    ),
    Rule(
        "uscore-documentreference-type",
        US_CORE,
        "USCoreDocumentReferenceProfile",
        "DocumentReference.type",
        "error",
        "1..1",
        "DocumentReference",
        _required("type"),
    ),
    Rule(
        "uscore-documentreference-category",
        US_CORE,
        "USCoreDocumentReferenceProfile",
        "DocumentReference.category",
        "error",
        "1..*",
        "DocumentReference",
        _required("category"),
    ),
    Rule(
        "sdohcc-task-status-reason",
        SDOHCC,
        "SDOHCCTaskForReferralManagement",
        "Task.statusReason",
        "warning",
        "applies to the current status: only on rejected, cancelled, on-hold or failed Tasks",
        "Task",
        _status_reason_current,
    ),
    Rule(
        "uscore-careplan-assess-plan",
        US_CORE,
        "USCoreCarePlanProfile",
        "CarePlan.category:AssessPlan",
        "error",
        "1..1 assess-plan",
        "CarePlan",
        _assess_plan,
    ),
    Rule(
        "uscore-careplan-text",
        US_CORE,
        "USCoreCarePlanProfile",
        "CarePlan.text",
        "error",
        "Must Support: status and div",
        "CarePlan",
        _narrative,
    ),
    Rule(
        "snomed-display",
        R4,
        "Coding",
        "Coding.display",
        "warning",
        "SNOMED displays as the R4 examples give them",
        "*",
        _snomed_displays,
    ),
    Rule(
        "registered-namespaces",
        R4,
        "Identifier / Coding",
        "system",
        "warning",
        "systems are URLs, not unregistered urn: namespaces",
        "*",
        _no_urn_namespaces,
    ),
    Rule(
        "meta-profile",
        R4,
        "Resource",
        "meta.profile",
        "warning",
        "every resource declares the profile it is built to",
        "*",
        _declares_profile,
    ),
    Rule(
        "example-shape-appointment",
        R4,
        "Appointment (guides' examples)",
        "serviceType, appointmentType, participant.type",
        "warning",
        "what the examples carry",
        "Appointment",
        _appointment_shape,
    ),
    Rule(
        "example-shape-coverage",
        US_CORE,
        "USCoreCoverageProfile",
        "Coverage.type, class, period",
        "warning",
        "Must Support elements the examples carry",
        "Coverage",
        _coverage_shape,
    ),
    Rule(
        "sdohcc-goal-achievement",
        SDOHCC,
        "SDOHCCGoal",
        "Goal.achievementStatus",
        "warning",
        "Must Support",
        "Goal",
        _goal_achievement,
    ),
    Rule(
        "sdohcc-condition-category",
        SDOHCC,
        "SDOHCCCondition",
        "Condition.category:SDOH",
        "warning",
        "an SDOH condition carries its SDOHCC category",
        "Condition",
        _condition_sdoh_category,
    ),
    Rule(
        "sdohcc-practitionerrole",
        SDOHCC,
        "SDOHCCPractitionerRole",
        "practitioner, organization, telecom",
        "error",
        "practitioner 1.., organization 1.., US Core pd-1 (telecom or endpoint)",
        "PractitionerRole",
        _practitioner_role,
    ),
)


def failures(written: Written) -> dict[str, list[str]]:
    """Rule id -> one '<label>: <problems>' line per resource that breaks it."""
    out: dict[str, list[str]] = {rule.id: [] for rule in RULES}
    for label, resource in written.items:
        for rule in RULES:
            if rule.resource_type not in ("*", resource.get("resourceType")):
                continue
            problems = rule.check(resource, written)
            if problems:
                out[rule.id].append(f"{label}: {'; '.join(problems)}")
    return out


def applicable(written: Written) -> dict[str, int]:
    """Rule id -> how many resources it applied to."""
    return {
        rule.id: sum(1 for _, r in written.items if rule.resource_type in ("*", r.get("resourceType")))
        for rule in RULES
    }
