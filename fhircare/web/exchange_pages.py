"""A referral sent to a partner, on its task page. The partner's organization sets its status on its own
server and it comes back here by sync, so the page offers none of the Task state machine's statuses: it
says the partner's status and when we last synced (the exchange link on our Task, as the patient page's
referrals do: partner_status.py) and offers *Cancel the referral* (a reason required) and, on a
conflict, both sides' status and version with *Keep ours* / *Take theirs*.

Both run the exchange exactly as ``POST /api/v1/exchange/cancel`` and ``.../resolve`` do (exchange_api's
``cancel_referral`` and ``resolve_conflict``, after its scope check ``require_writes`` and patient rule
``own_task``), under the page's own checks: CSRF, the Task in the address (task_address, 404 otherwise)
and one request id per intent (intents.py: a double submit or Back-and-resubmit is one action). Without
partners in this sidecar (``FHIRCARE_PARTNERS``) the page says the exchange is not configured here."""

from __future__ import annotations

import re
from dataclasses import dataclass

from flask import current_app, redirect, request, session, url_for
from werkzeug.wrappers import Response

from ..errors import FhircareError
from ..exchange import Exchange
from ..exchange.cursor import read_cursors
from ..exchange.links import Conflict, read_link
from ..views.tasks import TaskDetail
from .api import settings
from .csrf import check_csrf
from .exchange_api import CANCEL_REASON_LIMIT, cancel_referral, own_task, require_writes, resolve_conflict
from .fhir_access import access
from .intents import already_done, mark_done, request_id_for
from .pages import pages
from .partner_status import link_words
from .task_address import task_in_address
from .task_pages import for_whom, patient_task, render_task_page

PENDING_BANNER = "exchange_pending"
TAKES = {"local": "Keep ours", "remote": "Take theirs"}


@dataclass(frozen=True)
class SentReferral:
    """What the task page says of a referral sent to a partner."""

    configured: bool  # this sidecar has the partner in its partners file: cancel and resolve run here
    partner: str  # the partner's name, as the page says it
    words: str  # "partner: accepted · synced 10:42 UTC", "unreachable since …", "conflict: …"
    remote_status: str
    synced_at: str
    pending_reason: str  # a cancel waiting for the partner ("" for none)
    conflict: Conflict | None


def sent_referral(detail: TaskDetail) -> SentReferral | None:
    """The sent referral's state from our Task's exchange link (one search more for the partner's
    reachability when the exchange is configured here); None for a Task never sent."""
    if not detail.sent:
        return None
    link = read_link({"extension": detail.extensions}, settings().namespaces().base)
    partners = getattr(current_app.extensions.get("fhircare.exchange"), "partners", None)
    if link is None:
        return SentReferral(False, detail.owner_name or "the partner", "sent", "", "", "", None)
    configured = partners is not None and link.partner in partners.partners
    cursor = None
    if configured and partners is not None:
        try:
            exchange = Exchange(settings(), partners, access().view_client())
            cursor = read_cursors(exchange, {link.partner}).get(link.partner)
        except FhircareError as exc:
            if exc.status == 401:
                raise
    return SentReferral(
        configured,
        detail.owner_name or link.partner,
        link_words(link, cursor),
        link.remote_status or "",
        link.synced_at or "",
        link.cancel_reason or "",
        link.conflict,
    )


def page_context(detail: TaskDetail) -> dict[str, object]:
    """What task.html needs for a sent referral: its state, the forms' request ids, a pending banner."""
    sent = sent_referral(detail)
    if sent is None:
        return {"sent_referral": None}
    held = session.get(PENDING_BANNER)
    banner = held.get("text") if isinstance(held, dict) and held.get("task") == detail.reference else None
    if banner:
        session.pop(PENDING_BANNER, None)
    return {
        "sent_referral": sent,
        "cancel_request": request_id_for(_intent("cancel", detail.reference, detail.version)),
        "resolve_request": request_id_for(_intent("resolve", detail.reference, detail.version)),
        "pending_banner": banner,
        "takes": TAKES,
        "cancel_limit": CANCEL_REASON_LIMIT,
    }


def _intent(kind: str, task: str, version: str) -> str:
    return f"exchange-{kind}|{task}|{version}"


Answer = Response | tuple[str, int]


def _checked(patient_id: str | None, task_id: str, action: str) -> tuple[TaskDetail, Answer | None]:
    """The page's checks before anything is sent: CSRF, the scopes of all the action may write (403),
    the Task in the address (404), the patient session's own Task (403), the exchange configured here;
    then (the task, None), or the answer that refuses (nothing sent) or replays a done action."""
    check_csrf()
    require_writes(action)
    task_in_address(patient_id, f"Task/{task_id}")
    own_task(task_id)
    detail = patient_task(patient_id, task_id)
    sent = sent_referral(detail)
    if sent is None or not sent.configured:
        problem = (
            f"Not done: “{detail.what}”{for_whom(patient_id)} was not changed. The exchange between "
            "organizations is not configured on this console (FHIRCARE_PARTNERS), so the partner cannot be "
            "reached from here. Nothing was sent."
        )
        return detail, (render_task_page(patient_id, task_id, problem=problem), 409)
    if already_done(_intent(action, detail.reference, request.form.get("version", ""))):
        session["flash"] = f"Already done: “{detail.what}”{for_whom(patient_id)} is {detail.status}."
        return detail, _back(patient_id, task_id)
    return detail, None


def _words(error: FhircareError) -> str:
    """The exchange's refusal as a sentence, without the ids it names (the banner names the task)."""
    named = re.sub(r"\bTask/[A-Za-z0-9.-]+(:\s*)?", lambda m: "" if m.group(1) else "the task", error.message)
    text = named.strip() or "it was refused"
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


def _back(patient_id: str | None, task_id: str) -> Response:
    return redirect(url_for("pages.task_page", patient_id=patient_id, task_id=task_id), code=303)


@pages.post("/tasks/<task_id>/cancel-referral", defaults={"patient_id": None})
@pages.post("/patients/<patient_id>/tasks/<task_id>/cancel-referral")
def cancel_sent_referral(patient_id: str | None, task_id: str) -> Answer:
    """*Cancel the referral*: the partner's Task first, then ours and our ServiceRequest."""
    detail, refused = _checked(patient_id, task_id, "cancel")
    if refused is not None:
        return refused
    reason = request.form.get("cancel_reason", "").strip()
    if not reason or len(reason) > CANCEL_REASON_LIMIT:
        text = (
            "Say why the referral is cancelled: the reason goes to the partner and is kept on both sides."
            if not reason
            else f"Too long: at most {CANCEL_REASON_LIMIT} characters."
        )
        problem = f"Not done: “{detail.what}”{for_whom(patient_id)} was not changed. See the marked field."
        values = {"cancel_reason": reason}
        errors = {"cancel_reason": [text]}
        return render_task_page(patient_id, task_id, errors, problem, values), 422
    subject = f"“{detail.what}”{for_whom(patient_id)}"
    try:
        result = cancel_referral(task_id, reason)
    except FhircareError as exc:
        if exc.status in (401, 403) or exc.status >= 500:
            raise
        problem = f"Not cancelled: {subject} was not changed. {_words(exc)}"
        return render_task_page(patient_id, task_id, problem=problem), 409
    if result.outcome == "conflict" and result.conflict is not None:
        clash = result.conflict
        problem = (
            f"Not cancelled: {subject}. The partner's Task is already {clash.remote_status} (their "
            f"version {clash.remote_version}); ours is {clash.local_status} (our version "
            f"{clash.local_version}). Nothing changed on either side: resolve the conflict below, "
            "keeping ours or taking theirs."
        )
        return render_task_page(patient_id, task_id, problem=problem), 409
    mark_done(request.form.get("request_id", ""))
    if result.outcome == "pending":
        session[PENDING_BANNER] = {
            "task": f"Task/{task_id}",
            "text": f"Cancel pending for {subject}: the partner does not answer now; "
            "it is sent when the partner answers. Until then the referral stays as it is on both sides.",
        }
    else:
        session["flash"] = (
            f"Referral cancelled on both sides: {subject}. The partner's Task is cancelled, ours is "
            "cancelled and the referral request revoked."
        )
    return _back(patient_id, task_id)


@pages.post("/tasks/<task_id>/resolve", defaults={"patient_id": None})
@pages.post("/patients/<patient_id>/tasks/<task_id>/resolve")
def resolve_sent_referral(patient_id: str | None, task_id: str) -> Answer:
    """*Keep ours* (the partner's Task gets our status) or *Take theirs* (ours gets the partner's)."""
    detail, refused = _checked(patient_id, task_id, "resolve")
    if refused is not None:
        return refused
    take = request.form.get("take", "")
    subject = f"“{detail.what}”{for_whom(patient_id)}"
    if take not in TAKES:
        problem = f"Not resolved: {subject} was not changed. Choose Keep ours or Take theirs."
        return render_task_page(patient_id, task_id, problem=problem), 422
    try:
        result = resolve_conflict(task_id, take)
    except FhircareError as exc:
        if exc.status in (401, 403):
            raise
        words = "The partner does not answer now; try again later." if exc.status >= 500 else _words(exc)
        problem = f"Not resolved: {subject} was not changed. {words}"
        return render_task_page(patient_id, task_id, problem=problem), 409
    mark_done(request.form.get("request_id", ""))
    side = "kept ours" if take == "local" else "took the partner's"
    session["flash"] = f"Conflict resolved for {subject}: {side}; both sides now say {result.get('status')}."
    return _back(patient_id, task_id)
