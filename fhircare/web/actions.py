"""Actions from the patient's page: every workflow as a form generated from its input schema, prefilled
from what the page knows (the patient, the coordinator, their plan, referral, appointment, coverage),
with pickers instead of resource ids. Posting runs the workflow through the same guarded path as the
API; errors come back next to their fields (by JSON path), a success lists what was written.

A form's ``request_id`` is fixed per intent until a submission succeeds (``intents.py``): a double
click or Back-and-resubmit is one action; a later visit is a new one."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import abort, g, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response

from .. import clock
from ..errors import FhircareError
from ..workflows import WORKFLOWS
from .api import settings
from .callers import own_reference
from .csrf import check_csrf
from .fhir_access import access
from .form_context import (
    label_strays,
    legal_statuses,
    one_per_person,
    past_dates,
    ride_questions,
    ride_time,
    role_first,
)
from .forms import Field, flatten, form_fields, payload_from_form
from .intents import already_done, mark_done, request_id_for
from .pages import pages
from .pickers import KINDS, patient_choices, search_choices
from .runs import run_workflow

#: what each workflow is called on the page, in the order the page offers them
TITLES = {
    "refer": "Refer to a service",
    "schedule": "Book or change an appointment",
    "transport": "Arrange a ride",
    "coverage-check": "Check coverage",
    "prior-auth": "Request a prior authorization",
    "follow-up": "Plan a follow-up",
    "educate": "Send education",
    "care-plan": "Change the care plan",
    "assess": "Record an assessment",
    "transition": "Discharge / transition of care",
    "task": "Move a task",
    "enroll": "Enroll (family, team)",
}
#: fields that name the coordinator acting (prefilled with the signed-in or chosen coordinator)
ME_FIELDS = ("requester", "author", "coordinator", "sender", "actor", "provider", "practitioner", "owner")


def me() -> str | None:
    """The coordinator using the page: SMART ``fhirUser`` (as ``Type/id``), else development mode's choice."""
    launch = g.get("smart_session")
    if launch is not None:
        return own_reference(str(launch.user), (launch.iss, settings().base_url)) if launch.user else None
    chosen = session.get("me") if settings().auth_mode == "none" else None
    return str(chosen) if chosen else None


def _first(rows: list[dict[str, str]], *, status: str | None = None) -> str | None:
    for row in rows:
        if status is None or f"({status})" in row["label"]:
            return row["reference"]
    return rows[0]["reference"] if rows and status is None else None


def prefill(
    workflow: str, fields: list[Field], patient: str, own: dict[str, list[dict[str, str]]]
) -> dict[str, str]:
    """Values the form starts with: what the page knows, then the query string (a gap's next step, a
    directory entry) over it."""
    now = clock.now()
    known: dict[str, str | None] = {
        "patient": patient,
        "care_plan": _first(own["CarePlan"], status="active"),
        "from_plan": _first(own["CarePlan"], status="active"),
        "coverage": _first(own["Coverage"]),
        "payer": next((c["payor"] for c in own["Coverage"] if c.get("payor")), None),
        "payor": next((c["payor"] for c in own["Coverage"] if c.get("payor")), None),
        "appointment": _first(own["Appointment"], status="booked") or _first(own["Appointment"]),
        "referral": _first(own["ServiceRequest"], status="active"),
        "service_request": _first(own["ServiceRequest"], status="active"),
        "about": _first(own["ServiceRequest"], status="active"),
        "task": _first(own["Task"]),
        "due": (now + timedelta(days=7)).date().isoformat(),
        "date": now.date().isoformat(),
        "discharge_date": now.date().isoformat(),
        "start": (now + timedelta(days=1)).strftime("%Y-%m-%dT10:00"),
        "when": (now + timedelta(days=1)).strftime("%Y-%m-%dT09:15"),
        "priority": "routine",
        "minutes": "30",
        "relationship": "self",
        "action": {"schedule": "book", "prior-auth": "request"}.get(workflow),
    }
    if workflow == "schedule":
        known["appointment"] = None  # booking names no appointment; a change is asked for from one
    coordinator = me()
    for name in ME_FIELDS:
        if workflow == "task" and name == "owner":
            continue  # the task form hands over only when asked
        known[name] = coordinator
    names = {f.name for f in flatten(fields)}
    values = {k: v for k, v in known.items() if v and k in names}
    for key in request.args:
        if key in names:
            values[key] = request.args[key]
    return values


def _choices(
    fields: list[Field], patient: str
) -> tuple[dict[str, list[dict[str, str]]], dict[str, list[dict[str, str]]]]:
    client = access().view_client()
    own = patient_choices(client, patient)
    wanted = {kind for f in flatten(fields) if f.kind == "ref" for kind in f.picks if kind in KINDS}
    shared = {kind: search_choices(client, kind) for kind in sorted(wanted)}
    return own, shared


def options_for(
    f: Field, patient: str, own: dict[str, Any], shared: dict[str, Any], name: str
) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    for kind in f.picks:
        if kind == "Patient":
            out.append({"reference": patient, "label": name})
        out += own.get(kind, []) + shared.get(kind, [])
    return out


def table_keys(table: str | None) -> set[str]:
    if not table:
        return set()
    from ..workflows import mappings_for

    return set(mappings_for(settings()).codes.get(table, {}))


#: code tables keyed like the services table: their options are named as the coordinator knows the service
LABELS_FROM = {"prior-auth-services": "services", "prior-auth-categories": "services"}


def code_options(f: Field) -> list[tuple[str, str]]:
    if not f.table:
        return []
    from ..workflows import mappings_for

    codes = mappings_for(settings()).codes
    table, named = codes.get(f.table, {}), codes.get(LABELS_FROM.get(f.table, ""), {})

    def label(key: str, code: dict[str, Any]) -> str:
        display, service = str(code.get("display") or key), (named.get(key) or {}).get("display")
        if f.table == "prior-auth-categories" and service:
            return f"{display} (as for {service})"
        return str(service or display)

    return [(key, label(key, code)) for key, code in table.items()]


@pages.get("/patients/<patient_id>/do/<workflow>")
def workflow_form(patient_id: str, workflow: str) -> str:
    return _render_form(patient_id, workflow, None, {}, [])


def form_intent(workflow: str, patient: str) -> str:
    """What a form is for: the workflow, the patient and what it was opened about (its query)."""
    about = sorted((k, v) for k, v in request.args.items() if k != "new")
    return f"{workflow}|{patient}|{about}"


def _render_form(
    patient_id: str,
    workflow: str,
    values: dict[str, str] | None,
    errors: dict[str, list[str]],
    general: list[str],
    confirm_past: bool = False,
) -> str:
    if workflow not in WORKFLOWS:
        abort(404, "no such workflow")
    patient = f"Patient/{patient_id}"
    fresh = request.method == "GET" and request.args.get("new") == "1"
    fields = form_fields(settings().profiles_dir / "workflows", workflow)
    own, shared = _choices(fields, patient)
    from ..views.labels import person_name
    from ..views.patients import card_of

    found = access().view_client().read_reference(patient)
    name = person_name(found)
    if values is None:
        values = prefill(workflow, fields, patient, own)
        if workflow == "enroll":  # this patient, found again by identifier: never a second Patient
            from ..views.patients import enroll_values

            values = {**enroll_values(found, settings().namespaces()), **values}
        if workflow == "transport" and values.get("appointment") and "when" not in request.args:
            values["when"] = ride_time(patient, values["appointment"]) or values.get("when", "")
    label_strays(fields, values, own, shared)
    if workflow == "task":
        legal_statuses(fields, values.get("task"))
    return render_template(
        "action.html",
        workflow=workflow,
        title=TITLES.get(workflow, workflow),
        description=WORKFLOWS[workflow].description,
        patient_id=patient_id,
        patient_name=name,
        card=card_of(found, namespaces=settings().namespaces()),
        fields=fields,
        values=values,
        errors=errors,
        general=general,
        request_id=values.get("request_id")  # the posted one, unless it was refused as another action's
        or request_id_for(form_intent(workflow, patient), fresh=fresh),
        done_before=already_done(form_intent(workflow, patient)) and not fresh and not general,
        again_args={k: v for k, v in request.args.items() if k != "new"},
        options=lambda f: role_first(f.name, one_per_person(options_for(f, patient, own, shared, name))),
        codes=code_options,
        confirm_past=confirm_past,
    )


@pages.post("/patients/<patient_id>/do/<workflow>")
def run_action(patient_id: str, workflow: str) -> Response | tuple[str, int]:
    check_csrf()
    if workflow not in WORKFLOWS:
        abort(404, "no such workflow")
    fields = form_fields(settings().profiles_dir / "workflows", workflow)
    from .times import zone

    payload = payload_from_form(fields, request.form, table_keys, zone())
    names = {f.name for f in flatten(fields)}
    if "patient" in names:
        payload["patient"] = f"Patient/{patient_id}"  # the page's patient, whatever the form says
    from .task_address import task_in_address, tasks_named

    for task in tasks_named(payload):  # a Task the form names is this patient's, or 404: nothing written
        task_in_address(patient_id, task)
    asks = {name: "This is in the past." for name in past_dates(fields, request.form)}
    if workflow == "transport":
        asks.update(ride_questions(f"Patient/{patient_id}", payload))
    if asks and request.form.get("confirm") != "1":
        headline = f"Not sent yet: {TITLES.get(workflow, workflow).lower()}: please check the marked fields."
        values = {k: v for k, v in request.form.items() if k != "csrf"}
        errors = {name: [text] for name, text in asks.items()}
        return _render_form(patient_id, workflow, values, errors, [headline], confirm_past=True), 422
    payload["request_id"] = request.form.get("request_id") or request_id_for(
        form_intent(workflow, f"Patient/{patient_id}")
    )
    try:
        result = run_workflow(workflow, payload)
    except FhircareError as exc:
        if exc.status in (401, 403):
            raise
        from .banners import reused_request_id, task_subject
        from .field_messages import field_errors_in_words
        from .patient_pages import cards_for

        shown = {f.name for f in flatten(fields) if f.name != "patient"}
        errors, general = field_errors_in_words(exc, workflow, shown)
        values = {k: v for k, v in request.form.items() if k != "csrf" and k not in reused_request_id(exc)}
        about = f"Patient/{patient_id}"
        card = cards_for([about]).get(about)
        subject = task_subject(payload["task"]) if workflow == "task" and payload.get("task") else ""
        marked = sum(len(v) for v in errors.values())
        headline = (
            f"Not done: {TITLES.get(workflow, workflow).lower()} {subject or 'for ' + (card.name if card else 'the patient')}"
            " was refused. " + (f"{marked} field{'s' if marked != 1 else ''} marked below." if marked else "")
        )
        return _render_form(patient_id, workflow, values, errors, [headline.strip(), *general]), 422
    mark_done(payload["request_id"])
    if workflow == "task" and payload.get("to") == "completed":  # its page, with Undo in the banner
        return _completed(patient_id, payload["task"], result.repeated)
    from .patient_pages import cards_for

    about = f"Patient/{patient_id}"
    card = cards_for([about]).get(about)
    session["flash"] = (
        f"{TITLES.get(workflow, workflow)}: done"
        + (" (already done)" if result.repeated else "")
        + f" for {card.name if card else 'the patient'}"
    )
    session["written"] = [ref for ref in result.written if not ref.startswith("Provenance/")]
    return redirect(url_for("pages.summary_page", patient_id=patient_id), code=303)


def _completed(patient_id: str, task: str, repeated: bool) -> Response:
    """*Move a task* completed one: its page, the banner offering Undo (as the page's own Complete)."""
    from .banners import offer_undo, task_subject

    offer_undo(f"Task completed: {task_subject(task)}" + (" (already done)" if repeated else ""), task)
    return redirect(url_for("pages.task_page", patient_id=patient_id, task_id=task.split("/")[1]), code=303)
