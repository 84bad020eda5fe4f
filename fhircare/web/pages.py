"""The coordinator's web page: worklist, patient summary, task actions, care gaps, prior
authorizations, caseload chart.

Server-rendered, CSRF-protected forms (a per-session token in Flask's signed session cookie, checked
with a constant-time comparison), no JavaScript needed, every asset served from here.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, abort, g, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response

from ..errors import FhircareError
from .api import patient_param, settings
from .csrf import check_csrf, csrf_token
from .fhir_access import access
from .runs import run_workflow

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


def local_path(target: str | None, default: str) -> str:
    """``target`` when it is a path on this site (``/...``), else ``default``: never another host
    (``//evil``, ``/\\evil``, ``https://evil``), so a form cannot redirect elsewhere."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return default
    if any(ord(c) < 32 or c == "\\" for c in target):
        return default
    parts = urlsplit(target)
    return target if not parts.scheme and not parts.netloc else default


@pages.app_context_processor
def shared() -> dict[str, Any]:
    launch = g.get("smart_session")
    return {
        "csrf_token": csrf_token,
        "user": launch.user if launch else None,
        "signed_in": launch is not None,
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
    patient = patient_param()
    due_before = request.args.get("due_before") or None
    rows, problem = [], None
    try:
        rows = worklist(
            access().view_client(),
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
    check_csrf()
    action = request.form.get("action", "")
    payload: dict[str, Any] = {"task": f"Task/{task_id}"}
    if action == "reassign":
        payload["owner"] = request.form.get("new_owner", "").strip()
    elif action in ACTIONS:
        payload["to"] = ACTIONS[action]
    else:
        abort(400, "unknown action")
    if g.get("smart_session") is not None and g.smart_session.user:
        payload["actor"] = g.smart_session.user
    try:
        run_workflow("task", payload, creates={"Provenance"})
        message = DONE[action]
    except FhircareError as exc:
        if exc.status in (401, 403):
            raise
        message = f"Not done: {exc.message}"
    session["flash"] = message
    return redirect(local_path(request.form.get("back"), url_for("pages.worklist_page")), code=303)


@pages.get("/patients/<patient_id>")
def summary_page(patient_id: str) -> str:
    from ..views.summary import patient_summary

    summary = patient_summary(access().view_client(), f"Patient/{patient_id}")
    return render_template("summary.html", s=summary)


@pages.get("/gaps")
def gaps_page() -> str:
    from ..views.gaps import find_gaps

    gaps = find_gaps(
        access().view_client(), owner=default_owner(), patient=patient_param(), settings=settings()
    )
    return render_template("gaps.html", gaps=gaps)


@pages.get("/caseload")
def caseload_page() -> str:
    from ..views.caseload import caseload

    rows = caseload(access().view_client())
    biggest = max([r.open_tasks for r in rows] + [1])
    return render_template("caseload.html", rows=rows, biggest=biggest)


@pages.get("/authorizations")
def authorizations_page() -> str:
    from ..views.authorizations import authorizations

    patient = patient_param()
    launch = g.get("smart_session")
    requester = request.args.get("requester") or (launch.user if launch else None)
    rows = list(authorizations(access().view_client(), patient=patient, requester=requester))
    return render_template("authorizations.html", rows=rows, requester=requester or "")


@pages.post("/authorizations/record")
def record_authorization() -> Response:
    """Write the payer's answer onto its prior-auth Task (prior-auth, action record-decision). In a
    patient session the access guard checks the Task the workflow actually resolved, whatever the
    form's ``task`` says."""
    check_csrf()
    payload: dict[str, Any] = {
        "action": "record-decision",
        "task": request.form.get("task", ""),
        "claim_response": request.form.get("claim_response", ""),
    }
    if g.get("smart_session") is not None and g.smart_session.user:
        payload["actor"] = g.smart_session.user
    try:
        run_workflow("prior-auth", payload, creates={"Provenance"})
        message = "Payer's answer recorded"
    except FhircareError as exc:
        if exc.status in (401, 403):
            raise
        message = f"Not done: {exc.message}"
    session["flash"] = message
    return redirect(url_for("pages.authorizations_page"), code=303)


@pages.app_template_global()
def take_flash() -> str | None:
    message = session.pop("flash", None)
    return str(message) if message else None
