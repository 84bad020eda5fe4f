"""A payer's decision given by phone or fax, taken down on the prior-authorization Task's page.

The form runs ``prior-auth`` ``action: record-decision`` with a ``manual`` object, as the CLI and the
API do: the workflow writes the ClaimResponse (request = the Task's Claim, insurer = the payer), the
decision on the Task and the Provenance (the coordinator as author, the payer's person as informant)
in one transaction. A refusal is said at its field, nothing written."""

from __future__ import annotations

from typing import Any

from flask import redirect, request, session, url_for
from werkzeug.wrappers import Response

from ..errors import FhircareError
from .csrf import check_csrf
from .field_messages import field_errors_in_words
from .intents import mark_done
from .pages import pages
from .patient_pages import cards_for
from .runs import run_workflow
from .task_pages import add_actor, patient_task, render_task_page

#: the workflow's JSON path (under $.) -> the form's field
ALIASES = {
    "manual": "decision",
    "manual.decision": "decision",
    "manual.number": "number",
    "manual.period": "period_start",
    "manual.period.start": "period_start",
    "manual.period.end": "period_end",
    "manual.units": "units",
    "manual.said_by": "said_by",
    "manual.channel": "channel",
}
FIELDS = set(ALIASES.values())


def _manual(form: Any) -> dict[str, Any]:
    """The ``manual`` object from the form: empty fields left out, units as a number when they are one."""
    manual: dict[str, Any] = {}
    for name in ("decision", "number", "said_by", "channel"):
        value = form.get(name, "").strip()
        if value:
            manual[name] = value
    period = {k: form.get(f"period_{k}", "").strip() for k in ("start", "end")}
    period = {k: v for k, v in period.items() if v}
    if period:
        manual["period"] = period
    units = form.get("units", "").strip()
    if units:
        manual["units"] = int(units) if units.lstrip("-").isdigit() else units
    return manual


@pages.post("/patients/<patient_id>/tasks/<task_id>/decision")
def task_decision(patient_id: str, task_id: str) -> Response | tuple[str, int]:
    """Record the payer's decision given by phone or fax onto this prior-authorization Task."""
    check_csrf()
    detail = patient_task(patient_id, task_id)
    values = {k: v for k, v in request.form.items() if k != "csrf"}
    payload: dict[str, Any] = {
        "action": "record-decision",
        "task": detail.reference,
        "manual": _manual(request.form),
        "request_id": request.form.get("request_id") or None,
    }
    add_actor(payload)
    payload = {k: v for k, v in payload.items() if v is not None}
    card = cards_for([f"Patient/{patient_id}"]).get(f"Patient/{patient_id}")
    who = card.name if card else "the patient"
    try:
        result = run_workflow("prior-auth", payload, creates={"ClaimResponse", "Provenance"})
    except FhircareError as exc:
        if exc.status in (401, 403):
            raise
        errors, general = field_errors_in_words(exc, "prior-auth", shown=FIELDS, aliases=ALIASES)
        marked = f" {len(errors)} field{'s' if len(errors) != 1 else ''} marked below." if errors else ""
        problem = f"Not done: the payer's decision on “{detail.what}” for {who} was not recorded.{marked} "
        return render_task_page(
            patient_id, task_id, errors, (problem + " ".join(general)).strip(), values
        ), 422
    if payload.get("request_id"):
        mark_done(payload["request_id"])
    session["flash"] = f"Payer's decision recorded: “{detail.what}” for {who}" + (
        " (already done)" if result.repeated else ""
    )
    return redirect(url_for("pages.task_page", patient_id=patient_id, task_id=task_id), code=303)
