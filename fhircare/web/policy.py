"""One access policy for both faces (the API and the pages): route -> who may call it.

Every Flask endpoint has one rule here; a request to an endpoint without one is refused. Before any
view runs, the rule is applied in this order: the caller is authenticated (401), the granted scopes
cover what the answer shows (403), and the patient rule holds (403):

- ``own``: a patient session sees only its own patient (the route's patient, or none given: its own);
- ``none``: the answer spans patients, so a patient session gets 403;
- ``guard``: a workflow run; what it reads and writes is checked by the access guard (compartment.py);
- ``public``: no session needed (health, discovery, the launch itself, assets).
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, request

from ..errors import ScopeDenied
from .fhir_access import access, patient_in_context, require_scopes


@dataclass(frozen=True)
class Rule:
    patient: str  # own | none | guard | public
    reads: frozenset[str] = frozenset()  # types the answer shows: 'r' and 's' needed on each


def _reads(*types: str) -> frozenset[str]:
    return frozenset(types)


WORKLIST = Rule("own", _reads("Task", "Patient"))
SUMMARY = Rule(
    "own",
    _reads(
        "Patient",
        "CarePlan",
        "Goal",
        "Task",
        "Appointment",
        "Coverage",
        "CoverageEligibilityResponse",
        "Claim",
        "ClaimResponse",
        "Communication",
        "CareTeam",
        "RelatedPerson",
    ),
)
GAPS = Rule("own", _reads("Patient", "Task", "ServiceRequest", "Appointment", "CarePlan", "Coverage", "Goal"))
CASELOAD = Rule("none", _reads("Task", "Practitioner"))
AUTHORIZATIONS = Rule("own", _reads("Task", "Patient", "Claim", "ClaimResponse"))
DIRECTORY = Rule("own", _reads("HealthcareService", "Organization", "Location"))
LOOKUP = Rule(
    "own", _reads("Practitioner", "PractitionerRole", "Organization", "Location", "HealthcareService")
)
RUN = Rule("guard")
# a workflow's form shows the patient's own resources and the shared ones its pickers offer
FORM = Rule("own", SUMMARY.reads | LOOKUP.reads | {"ServiceRequest"})
# finding a patient spans patients: a patient session gets 403 (it has its own patient only)
PATIENTS = Rule("none", _reads("Patient"))
# a new patient is no patient session's own: refused there (403); the form's pickers need their reads
NEW_PATIENT = Rule("none", LOOKUP.reads | {"Patient"})
# the patient page adds to the summary its referrals (partners named), closed tasks and timeline
PATIENT_PAGE = Rule(
    "own",
    SUMMARY.reads
    | {"ServiceRequest", "Provenance", "Practitioner", "Organization", "CoverageEligibilityRequest"},
)
# a task's page: the task, its history and Provenance, the people it names
TASK = Rule("own", _reads("Task", "Provenance", "Patient", "Practitioner"))
CHOOSER = Rule("own", _reads("Practitioner"))  # development mode: which coordinator uses the page
PUBLIC = Rule("public")

POLICY: dict[str, Rule] = {
    # the API
    "api.run_workflow": RUN,
    "api.transition_task": RUN,
    "api.get_worklist": WORKLIST,
    "api.get_summary": SUMMARY,
    "api.get_gaps": GAPS,
    "api.get_caseload": CASELOAD,
    "api.get_authorizations": AUTHORIZATIONS,
    "api.get_directory": DIRECTORY,
    "api.lookup": LOOKUP,
    "api.openapi": PUBLIC,
    "api.healthz": PUBLIC,
    "api.readyz": PUBLIC,
    # the pages
    "pages.worklist_page": WORKLIST,
    "pages.summary_page": PATIENT_PAGE,
    "pages.gaps_page": GAPS,
    "pages.caseload_page": CASELOAD,
    "pages.authorizations_page": AUTHORIZATIONS,
    "pages.task_action": RUN,
    "pages.directory_page": DIRECTORY,
    "pages.workflow_form": FORM,
    "pages.run_action": RUN,
    "pages.choose_me": CHOOSER,
    "pages.patients_page": PATIENTS,
    "pages.new_patient_form": NEW_PATIENT,
    "pages.new_patient_run": NEW_PATIENT,
    "pages.task_page": TASK,
    "pages.task_note": RUN,
    "pages.task_status": RUN,
    "pages.task_decision": RUN,
    "pages.record_authorization": RUN,
    "pages.static": PUBLIC,
    # SMART
    "smart.launch": PUBLIC,
    "smart.callback": PUBLIC,
    "smart.logout": PUBLIC,  # CSRF-checked; signs out only the caller's own session
}


def patient_asked() -> str | None:
    """The patient a request is about: the route's ``patient_id``, else its ``patient`` parameter."""
    args = request.view_args or {}
    if args.get("patient_id"):
        return f"Patient/{args['patient_id']}"
    return request.args.get("patient") or None


def enforce() -> None:
    """Before every request: the endpoint's rule (a request to an endpoint without one is refused)."""
    endpoint = request.endpoint
    if endpoint is None:
        return  # no route matched: 404 / 405 follow
    rule = POLICY.get(endpoint)
    if rule is None:
        raise ScopeDenied("this route has no access rule")
    if rule.patient == "public":
        return
    access().authenticate()
    require_scopes(rule.reads, "rs")
    own = patient_in_context()
    if own is None:
        return
    if rule.patient == "none":
        raise ScopeDenied("this answer spans patients; a patient-launch session cannot see it")
    if rule.patient == "own" and patient_asked() not in (None, own):
        raise ScopeDenied("this session is limited to its launch patient")


def init_policy(app: Flask) -> None:
    app.before_request(enforce)
