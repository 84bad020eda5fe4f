"""A task's own page, open or closed: what it is, its status and why, its notes (author and time), its
outcome and its changes (who, what, when, why); a note without a status change; a status form that
offers only the statuses the Task state machine allows from here and asks the reason where one is due.

Both forms run the ``task`` workflow through the same guarded path as the API. A completion can be
undone while its undo window is open (``undo-complete``): from the banner after Complete, and from the
page's *Undo completion*; both forms carry the same fixed request id, so a double submit is one undo."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from flask import redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response

from .. import clock
from ..care.task_states import REASONED, undo_closes
from ..errors import FhircareError, Issue, NotFound, PayloadError
from ..views.tasks import TaskDetail, task_detail
from .api import settings
from .banners import offer_undo, refusal_words, take_undo_banner
from .csrf import check_csrf
from .fhir_access import access
from .field_messages import field_errors_in_words
from .intents import already_done, mark_done, request_id_for
from .pages import pages
from .patient_pages import cards_for
from .runs import run_workflow
from .task_address import check_task_patient, not_here, task_in_address
from .times import when

#: a payer's decision taken by hand (the form in _decision.html, its route in decision_pages.py)
DECISIONS = {
    "approved": "Approved",
    "partial": "Partially approved",
    "denied": "Denied",
    "pended": "Pended (still under review)",
}
CHANNELS = {"phone": "By phone", "fax": "By fax"}

#: how each status reads on a button
VERBS = {
    "received": "Mark received",
    "accepted": "Accept",
    "rejected": "Reject",
    "ready": "Mark ready",
    "cancelled": "Cancel the task",
    "in-progress": "Start / resume",
    "on-hold": "Put on hold",
    "failed": "Mark failed",
    "completed": "Complete",
    "requested": "Request",
}


def patient_task(patient_id: str | None, task_id: str) -> TaskDetail:
    """The task, when the address may name it (``task_address``: this patient's, or under ``/tasks/``
    one with no patient of ours); 404 otherwise: the page never shows another patient's task."""
    try:
        detail = task_detail(access().view_client(), f"Task/{task_id}")
    except NotFound:
        not_here(patient_id)
    check_task_patient(patient_id, detail.patient)
    return detail


def for_whom(patient_id: str | None) -> str:
    """`` for Ana Okafor`` (the patient the address names), ``""`` for a task with no patient of ours."""
    if not patient_id:
        return ""
    card = cards_for([f"Patient/{patient_id}"]).get(f"Patient/{patient_id}")
    return f" for {card.name if card else 'the patient'}"


def _intent(kind: str, detail: TaskDetail) -> str:
    return f"{kind}|{detail.reference}|{detail.version}"


def undo_window() -> timedelta:
    """How long a completion may be undone (``FHIRCARE_UNDO_WINDOW_MINUTES``)."""
    return timedelta(minutes=settings().undo_window_minutes)


def undo_deadline(detail: TaskDetail) -> datetime | None:
    """When the undo window of the task's completion closes; None when its newest version is no
    completion, or it was sent to a partner (whose status owns it)."""
    if not detail.completed_at or detail.sent:
        return None
    return undo_closes(datetime.fromisoformat(detail.completed_at), undo_window())


def render_task_page(
    patient_id: str | None,
    task_id: str,
    errors: dict[str, list[str]] | None = None,
    problem: str | None = None,
    values: dict[str, str] | None = None,
) -> str:
    """The task's page, with a refused form's errors, banner and values when there are some."""
    from .exchange_pages import page_context  # a referral sent to a partner: its status is theirs

    detail = patient_task(patient_id, task_id)
    patient = f"Patient/{patient_id}" if patient_id else None
    card = cards_for([patient]).get(patient) if patient else None
    closes = undo_deadline(detail)
    undo_open = closes is not None and clock.now() < closes
    return render_template(
        "task.html",
        t=detail,
        patient_id=patient_id,
        task_id=task_id,
        card=card,
        patient_name=card.name if card else (patient or _no_patient(detail)),
        verbs=VERBS,
        reasoned=sorted(REASONED),
        errors=errors or {},
        problem=problem,
        values=values or {},
        note_request=request_id_for(_intent("note", detail)),
        status_request=request_id_for(_intent("status", detail)),
        note_done=already_done(_intent("note", detail)),
        decision_request=request_id_for(_intent("decision", detail)),
        undo_banner=take_undo_banner(detail.reference),
        undo_until=closes.isoformat() if closes else "",
        undo_open=undo_open,
        undo_request=request_id_for(_intent("undo", detail)) if undo_open else "",
        undo_minutes=f"{undo_window().total_seconds() / 60:g}",
        decisions=DECISIONS,
        channels=CHANNELS,
        **page_context(detail),
    )


def _no_patient(detail: TaskDetail) -> str:
    return "a patient of the referring organization" if detail.patient else "no patient"


@pages.get("/tasks/<task_id>", defaults={"patient_id": None})
@pages.get("/patients/<patient_id>/tasks/<task_id>")
def task_page(patient_id: str | None, task_id: str) -> str:
    """The task; ``?to=completed`` (the worklist's *Complete…*) opens it with that status chosen."""
    chosen = request.args.get("to", "")
    return render_task_page(patient_id, task_id, values={"to": chosen} if chosen in VERBS else None)


def add_actor(payload: dict[str, Any]) -> None:
    """The coordinator using the page (SMART's fhirUser or the development-mode choice) as the actor."""
    from .actions import me

    who = me()
    if who:
        payload["actor"] = who


def _run(
    patient_id: str | None, task_id: str, payload: dict[str, Any], done: str
) -> Response | tuple[str, int]:
    values = {k: v for k, v in request.form.items() if k != "csrf"}
    try:
        result = run_workflow("task", payload, creates={"Provenance"})
    except FhircareError as exc:
        if exc.status in (401, 403):
            raise
        errors, general = field_errors_in_words(exc, "task")
        detail = patient_task(patient_id, task_id)
        problem = f"Not done: “{detail.what}”{for_whom(patient_id)} was not changed. " + " ".join(general)
        return render_task_page(patient_id, task_id, errors, problem.strip(), values), 422
    mark_done(payload["request_id"])
    detail = patient_task(patient_id, task_id)
    text = f"{done} “{detail.what}”{for_whom(patient_id)}" + (" (already done)" if result.repeated else "")
    if payload.get("to") == "completed" and detail.status == "completed":
        offer_undo(text, detail.reference)  # the task's page shows it with Undo while the window is open
    else:
        session["flash"] = text
    return redirect(url_for("pages.task_page", patient_id=patient_id, task_id=task_id), code=303)


@pages.post("/tasks/<task_id>/note", defaults={"patient_id": None})
@pages.post("/patients/<patient_id>/tasks/<task_id>/note")
def task_note(patient_id: str | None, task_id: str) -> Response | tuple[str, int]:
    check_csrf()
    task_in_address(patient_id, f"Task/{task_id}")  # 404 for another patient's task, nothing written
    payload: dict[str, Any] = {
        "task": f"Task/{task_id}",
        "note": request.form.get("note", "").strip(),
        "request_id": request.form.get("request_id") or "",
    }
    add_actor(payload)
    payload = {k: v for k, v in payload.items() if v}
    if "note" not in payload:
        return _refuse(patient_id, task_id, "note", "Write the note first: it is empty.")
    return _run(patient_id, task_id, payload, "Note added to")


@pages.post("/tasks/<task_id>/status", defaults={"patient_id": None})
@pages.post("/patients/<patient_id>/tasks/<task_id>/status")
def task_status(patient_id: str | None, task_id: str) -> Response | tuple[str, int]:
    check_csrf()
    task_in_address(patient_id, f"Task/{task_id}")  # 404 for another patient's task, nothing written
    target = request.form.get("to", "")
    reason = request.form.get("reason", "").strip()
    outcome = request.form.get("outcome", "").strip()
    if not target:
        return _refuse(patient_id, task_id, "to", "Choose the new status.")
    if target in REASONED and not reason:
        return _refuse(
            patient_id, task_id, "reason", f"Say why the task is {target}: the reason is shown on it."
        )
    payload: dict[str, Any] = {
        "task": f"Task/{task_id}",
        "to": target,
        "request_id": request.form.get("request_id"),
    }
    if reason:
        payload["reason"] = reason
    if outcome and target == "completed":
        # a referral keeps what was done as its output (and a note); any other task as a note
        referral = patient_task(patient_id, task_id).referral
        payload.update({"outcome": {"note": outcome}} if referral else {"note": outcome})
    add_actor(payload)
    payload = {k: v for k, v in payload.items() if v}
    return _run(patient_id, task_id, payload, f"Task {target}:")


@pages.post("/tasks/<task_id>/undo", defaults={"patient_id": None})
@pages.post("/patients/<patient_id>/tasks/<task_id>/undo")
def task_undo(patient_id: str | None, task_id: str) -> Response | tuple[str, int]:
    """Undo the task's completion (the banner's *Undo*, the page's *Undo completion*)."""
    check_csrf()
    task_in_address(patient_id, f"Task/{task_id}")  # 404 for another patient's task, nothing written
    payload: dict[str, Any] = {
        "task": f"Task/{task_id}",
        "version": request.form.get("version", ""),
        "request_id": request.form.get("request_id", ""),
    }
    add_actor(payload)
    payload = {k: v for k, v in payload.items() if v}
    try:
        result = run_workflow("undo-complete", payload, creates={"Provenance"})
    except FhircareError as exc:
        if exc.status in (401, 403) or exc.status >= 500:
            raise
        detail = patient_task(patient_id, task_id)
        problem = (
            f"Not undone: “{detail.what}”{for_whom(patient_id)} was not changed. {_undo_refusal(exc, detail)}"
        )
        return render_task_page(patient_id, task_id, problem=problem), 409
    if "request_id" in payload:
        mark_done(payload["request_id"])
    detail = patient_task(patient_id, task_id)
    session["flash"] = (
        f"Completion undone: “{detail.what}”{for_whom(patient_id)} is "
        f"{detail.status} again" + (" (already done)" if result.repeated else "")
    )
    return redirect(url_for("pages.task_page", patient_id=patient_id, task_id=task_id), code=303)


def _undo_refusal(error: FhircareError, detail: TaskDetail) -> str:
    """Why an undo was refused, in words; the closed window with its time in the coordinator's zone."""
    closes = undo_deadline(detail)
    if closes is not None and clock.now() >= closes:
        return (
            f"A completion can be undone for {undo_window().total_seconds() / 60:g} minutes only: this "
            f"one's undo window closed at {when(closes.isoformat())}. The completion stands."
        )
    words = error.message or refusal_words(error, "undo-complete")
    return words[:1].upper() + words[1:] + ("" if words.endswith(".") else ".")


def _refuse(patient_id: str | None, task_id: str, name: str, text: str) -> tuple[str, int]:
    """A form refused before any run: the message at its field, the banner naming the task."""
    error = PayloadError(text, [Issue("error", "required", text, (f"$.{name}",))])
    errors, _ = field_errors_in_words(error, "task")
    values = {k: v for k, v in request.form.items() if k != "csrf"}
    detail = patient_task(patient_id, task_id)
    problem = f"Not done: “{detail.what}” was not changed. See the marked field."
    return render_task_page(patient_id, task_id, errors, problem, values), 422
