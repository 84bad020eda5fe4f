"""The coordinator's web page: worklist, patient summary, task actions, care gaps, prior
authorizations, caseload chart.

Server-rendered, CSRF-protected forms (a per-session token in Flask's signed session cookie, checked
with a constant-time comparison), no JavaScript needed, every asset served from here.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any

from flask import Blueprint, abort, g, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response

from ..errors import FhircareError
from .api import patient_in_context, require_patient, settings
from .fhir_access import access, require_scopes, require_write_scopes

pages = Blueprint(
    "pages", __name__, template_folder="templates", static_folder="static", static_url_path="/static"
)
ACTIONS = {"accept": "accepted", "start": "in-progress", "complete": "completed"}
DONE = {
    "accept": "Task accepted",
    "start": "Task started",
    "complete": "Task completed",
    "reassign": "Task handed over",
}


def csrf_token() -> str:
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    return str(session["csrf"])


def check_csrf() -> None:
    sent = request.form.get("csrf", "")
    if not sent or not hmac.compare_digest(sent, session.get("csrf", "")):
        abort(400, "the form's CSRF token is missing or wrong; reload the page")


@pages.app_context_processor
def shared() -> dict[str, Any]:
    launch = g.get("smart_session")
    return {
        "csrf_token": csrf_token,
        "user": launch.user if launch else None,
        "smart": settings().auth_mode == "smart",
    }


def default_owner() -> str | None:
    launch = g.get("smart_session")
    return request.args.get("owner") or (launch.user if launch else None)


@pages.get("/")
def worklist_page() -> str:
    from ..views.worklist import OPEN_STATUSES, worklist

    owner = default_owner()
    status = request.args.get("status") or ""
    patient = request.args.get("patient") or patient_in_context()
    due_before = request.args.get("due_before") or None
    rows, problem = [], None
    try:
        require_scopes({"Task"}, "r")
        require_patient(patient)
        rows = worklist(
            access().client_for_request(),
            owners=[owner] if owner else [],
            statuses=[status] if status else OPEN_STATUSES,
            patient=patient,
            due_before=due_before,
        )
    except FhircareError as exc:
        problem = exc.message
    return render_template(
        "worklist.html",
        rows=rows,
        owner=owner or "",
        status=status,
        patient=patient or "",
        due_before=due_before or "",
        problem=problem,
        statuses=OPEN_STATUSES,
    )


@pages.post("/tasks/<task_id>/action")
def task_action(task_id: str) -> Response:
    from ..workflows import get_workflow

    check_csrf()
    action = request.form.get("action", "")
    payload: dict[str, Any] = {"task": f"Task/{task_id}"}
    if action == "reassign":
        payload["owner"] = request.form.get("new_owner", "").strip()
    elif action in ACTIONS:
        payload["to"] = ACTIONS[action]
    else:
        abort(400, "unknown action")
    client = access().client_for_request()
    workflow = get_workflow("task", client, settings())
    require_write_scopes({"Provenance"}, set(workflow.updates_types))
    if patient_in_context() is not None:
        require_patient((client.read("Task", task_id).get("for") or {}).get("reference"))
    if g.get("smart_session") is not None and g.smart_session.user:
        payload["actor"] = g.smart_session.user
    try:
        workflow.run(payload)
        message = DONE[action]
    except FhircareError as exc:
        message = f"Not done: {exc.message}"
    session["flash"] = message
    return redirect(request.form.get("back") or url_for("pages.worklist_page"), code=303)


@pages.get("/patients/<patient_id>")
def summary_page(patient_id: str) -> str:
    from ..views.summary import patient_summary

    require_patient(f"Patient/{patient_id}")
    summary = patient_summary(access().client_for_request(), f"Patient/{patient_id}")
    return render_template("summary.html", s=summary)


@pages.get("/gaps")
def gaps_page() -> str:
    from ..views.gaps import find_gaps

    patient = request.args.get("patient") or patient_in_context()
    require_patient(patient)
    gaps = find_gaps(
        access().client_for_request(), owner=default_owner(), patient=patient, settings=settings()
    )
    return render_template("gaps.html", gaps=gaps)


@pages.get("/caseload")
def caseload_page() -> str:
    from ..views.caseload import caseload

    rows = caseload(access().client_for_request())
    biggest = max([r.open_tasks for r in rows] + [1])
    return render_template("caseload.html", rows=rows, biggest=biggest)


@pages.get("/authorizations")
def authorizations_page() -> str:
    from ..views.authorizations import authorizations

    require_scopes({"Task", "Claim", "ClaimResponse"}, "r")
    patient = request.args.get("patient") or patient_in_context()
    require_patient(patient)
    launch = g.get("smart_session")
    requester = request.args.get("requester") or (launch.user if launch else None)
    rows = list(authorizations(access().client_for_request(), patient=patient, requester=requester))
    return render_template("authorizations.html", rows=rows, requester=requester or "")


@pages.post("/authorizations/record")
def record_authorization() -> Response:
    """Write the payer's answer onto its prior-auth Task (prior-auth, action record-decision)."""
    from ..workflows import get_workflow

    check_csrf()
    payload: dict[str, Any] = {
        "action": "record-decision",
        "task": request.form.get("task", ""),
        "claim_response": request.form.get("claim_response", ""),
    }
    client = access().client_for_request()
    workflow = get_workflow("prior-auth", client, settings())
    require_write_scopes({"Provenance"}, set(workflow.updates_types))
    if patient_in_context() is not None:
        task_id = payload["task"].split("/")[-1]
        require_patient((client.read("Task", task_id).get("for") or {}).get("reference"))
    if g.get("smart_session") is not None and g.smart_session.user:
        payload["actor"] = g.smart_session.user
    try:
        workflow.run(payload)
        message = "Payer's answer recorded"
    except FhircareError as exc:
        message = f"Not done: {exc.message}"
    session["flash"] = message
    return redirect(url_for("pages.authorizations_page"), code=303)


@pages.app_template_global()
def take_flash() -> str | None:
    message = session.pop("flash", None)
    return str(message) if message else None
