"""One access policy for both faces (the API and the pages): route -> who may call it.

Every Flask endpoint has one rule here; a request to an endpoint without one is refused. Before any
view runs, the rule is applied in this order: the caller is authenticated (401), the granted scopes
cover what the answer shows (403), and the patient rule holds (403):

- ``own``: a patient session sees only its own patient (the route's patient, or none given: its own);
- ``none``: the answer spans patients, so a patient session gets 403;
- ``guard``: a workflow run; what it reads and writes is checked by the access guard (compartment.py);
- ``public``: no session needed (health, discovery, the launch itself, assets).

A caller who belongs to a partner (the light pattern: ``callers`` in the partners file, callers.py) may
reach only PARTNER_ROUTES, and there only its partner's Tasks and worklist: every other route is 403
before its view runs (so nothing is read for them, nothing written).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Flask, redirect, request, url_for
from werkzeug.wrappers import Response

from ..errors import FhircareError, ScopeDenied
from .callers import PartnerCaller, partner_caller
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
    "pages.task_undo": RUN,
    "pages.cancel_sent_referral": RUN,  # exchange_pages.py: scopes checked as the exchange API's
    "pages.resolve_sent_referral": RUN,
    "pages.task_decision": RUN,
    "pages.record_authorization": RUN,
    "pages.static": PUBLIC,
    # SMART
    "smart.launch": PUBLIC,
    "smart.callback": PUBLIC,
    "smart.logout": PUBLIC,  # CSRF-checked; signs out only the caller's own session
}


#: what a partner's caller may reach: "task" routes name a Task its Organization owns; "owner" routes are
#: its Organization's worklist. Runs (the task routes that write) are checked again in runs.py.
PARTNER_ROUTES: dict[str, str] = {
    "api.transition_task": "task",
    "api.get_worklist": "owner",
    "pages.worklist_page": "owner",
    "pages.task_page": "task",
    "pages.task_status": "task",
    "pages.task_action": "task",
}
NOT_THEIRS = "this Task is not one your organization owns"


def patient_asked() -> str | None:
    """The patient a request is about: the route's ``patient_id``, else its ``patient`` parameter."""
    args = request.view_args or {}
    if args.get("patient_id"):
        return f"Patient/{args['patient_id']}"
    return request.args.get("patient") or None


def enforce() -> Response | None:
    """Before every request: the endpoint's rule (a request to an endpoint without one is refused)."""
    endpoint = request.endpoint
    if endpoint is None:
        return None  # no route matched: 404 / 405 follow
    rule = POLICY.get(endpoint)
    if rule is None:
        raise ScopeDenied("this route has no access rule")
    if rule.patient == "public":
        return None
    access().authenticate()
    require_scopes(rule.reads, "rs")
    acting = partner_caller()
    if acting is not None:
        moved = enforce_partner(endpoint, acting)
        if moved is not None:
            return moved
    own = patient_in_context()
    if own is None:
        return None
    if rule.patient == "none":
        raise ScopeDenied("this answer spans patients; a patient-launch session cannot see it")
    if rule.patient == "own" and patient_asked() not in (None, own):
        raise ScopeDenied("this session is limited to its launch patient")
    return None


def enforce_partner(endpoint: str, acting: PartnerCaller) -> Response | None:
    """A partner's caller: only PARTNER_ROUTES, only its Organization's Tasks (one read of the Task)."""
    kind = PARTNER_ROUTES.get(endpoint)
    if kind is None:
        raise ScopeDenied("a partner's staff may only work the referrals their organization owns")
    org = acting.partner.organization
    if kind == "owner":
        asked = request.args.getlist("owner")
        if any(o != org for o in asked) or request.args.get("tab") not in (None, "mine"):
            raise ScopeDenied("a partner's staff see only their organization's worklist")
        if request.args.get("gap") or request.args.get("patient"):
            raise ScopeDenied("a partner's staff see only their organization's worklist")
        if endpoint == "pages.worklist_page" and not asked:  # the console opens on its worklist
            return redirect(url_for("pages.worklist_page", owner=org, tab="mine"), code=302)
        return None
    task_of_partner(str((request.view_args or {}).get("task_id")), org)
    return None


def task_of_partner(task_id: str, org: str) -> dict[str, Any]:
    """The Task, when ``org`` owns it (and it is the route's patient's); else one 403 for another's Task
    and for none at all (no answer tells which)."""
    try:
        task = access().client_for_request().read("Task", task_id)
    except FhircareError as exc:
        if exc.status >= 500:
            raise
        raise ScopeDenied(NOT_THEIRS) from None
    patient = (request.view_args or {}).get("patient_id")
    if (task.get("owner") or {}).get("reference") != org or (
        patient is not None and (task.get("for") or {}).get("reference") != f"Patient/{patient}"
    ):
        raise ScopeDenied(NOT_THEIRS)
    return task


def init_policy(app: Flask) -> None:
    app.before_request(enforce)
