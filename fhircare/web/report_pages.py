"""The console's report pages: care gaps with their next steps, the directory of services, the caseload
charts and the prior authorizations. They join the page blueprint (same access policy, same CSRF)."""

from __future__ import annotations

from typing import Any

from flask import g, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from ..errors import FhircareError
from .api import patient_param, settings
from .csrf import check_csrf
from .fhir_access import access
from .pages import default_owner, pages
from .runs import run_workflow


@pages.get("/gaps")
def gaps_page() -> str:
    from ..views.gaps import find_gaps
    from .context import name_of, read_all

    client = access().view_client()
    gaps = find_gaps(client, owner=default_owner(), patient=patient_param(), settings=settings())
    people = read_all(client, {gap.patient for gap in gaps if gap.patient})
    names = {ref: name_of(resource) for ref, resource in people.items()}
    from ..views.patients import card_of

    cards = {ref: card_of(r, namespaces=settings().namespaces()) for ref, r in people.items()}
    return render_template("gaps.html", gaps=gaps, names=names, cards=cards, next_step=next_step)


#: a gap's resource type -> the form fields it prefills in the gap's next step
GAP_FIELDS = {
    "ServiceRequest": ("referral", "about", "service_request"),
    "Appointment": ("about", "appointment"),
    "Task": ("about", "task"),
    "CarePlan": ("about", "care_plan", "from_plan"),
    "Coverage": ("coverage",),
    "Goal": (),
}
NEXT_STEP_TEXT = {
    "follow-up": "Plan a follow-up",
    "schedule": "Book the appointment",
    "coverage-check": "Check coverage",
    "task": "Move the task",
    "care-plan": "Update the care plan",
}


def next_step(gap: Any) -> tuple[str, str] | None:
    """(button text, the form's address, prefilled with what the gap is about)."""
    if not gap.patient or "/" not in gap.patient:
        return None
    kind = gap.resource.split("/", 1)[0]
    params = {name: gap.resource for name in GAP_FIELDS.get(kind, ())}
    if gap.next_workflow == "follow-up":
        params["note"] = f"Follow up: {gap.title}"
    url = url_for(
        "pages.workflow_form",
        patient_id=gap.patient.split("/", 1)[1],
        workflow=gap.next_workflow,
        **params,
    )
    return NEXT_STEP_TEXT.get(gap.next_workflow, gap.next_workflow), url


@pages.get("/directory")
def directory_page() -> str:
    from ..views.directory import directory
    from .context import name_of, read_all

    client = access().view_client()
    category = request.args.get("category") or ""
    near = (request.args.get("near") or "").strip()[:40]
    name = (request.args.get("name") or "").strip()[:100]
    patient = patient_param()
    rows, problem = [], None
    try:
        rows = directory(client, category=category or None, near=near or None, name=name or None)
    except FhircareError as exc:
        problem = exc.message
    patient_name = name_of(read_all(client, {patient}).get(patient)) if patient else ""
    return render_template(
        "directory.html",
        rows=rows,
        category=category,
        near=near,
        name=name,
        patient=patient or "",
        patient_name=patient_name,
        problem=problem,
        categories=DIRECTORY_CATEGORIES,
    )


#: the categories the directory page offers (the demo's; any other code can be typed in the API)
DIRECTORY_CATEGORIES = (
    ("food-pantry", "Food pantry"),
    ("transportation", "Transportation"),
    ("diabetes-education", "Diabetes education"),
    ("nutrition", "Nutrition"),
    ("cardiology", "Cardiology"),
    ("social-services", "Social services"),
    ("behavioral-health", "Behavioral health"),
    ("home-care", "Home care"),
)


@pages.get("/caseload")
def caseload_page() -> str:
    from ..views.caseload import caseload
    from ..views.trend import task_trend
    from .charts import caseload_bars, closure_bars, trend_lines

    client = access().view_client()
    rows = caseload(client)  # named, a role's tasks on its practitioner's row (the view does both)
    days = task_trend(client)
    return render_template(
        "caseload.html",
        rows=rows,
        bars=caseload_bars(rows),
        trend=trend_lines(days),
        closure=closure_bars(rows),
        days=days,
    )


@pages.get("/authorizations")
def authorizations_page() -> str:
    from ..views.authorizations import authorizations

    patient = patient_param()
    launch = g.get("smart_session")
    requester = request.args.get("requester") or (launch.user if launch else None)
    rows = list(authorizations(access().view_client(), patient=patient, requester=requester))
    from .context import name_of, read_all
    from .patient_pages import cards_for

    cards = cards_for(r.patient for r in rows)
    named = read_all(access().view_client(), {requester}) if requester and requester.count("/") == 1 else {}
    return render_template(
        "authorizations.html",
        rows=rows,
        cards=cards,
        requester=requester or "",
        requester_name=name_of(named.get(requester or "")),
    )


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
    from .banners import refusal_words, say_done, say_refused, task_subject

    subject = task_subject(payload["task"]) if payload["task"].count("/") == 1 else "the request"
    try:
        run_workflow("prior-auth", payload, creates={"Provenance"})
        say_done(f"Payer's answer recorded: {subject}")
    except FhircareError as exc:
        if exc.status in (401, 403):
            raise
        say_refused(
            f"Not done: the payer's answer to {subject} was not recorded. {refusal_words(exc, 'prior-auth')}"
        )
    return redirect(url_for("pages.authorizations_page"), code=303)
