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
ACTIONS = {"accept": "accepted", "start": "in-progress"}
DONE = {
    "accept": "Task accepted",
    "start": "Task started",
    "reassign": "Task handed over",
    "claim": "Task claimed",
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
    from .actions import me

    return request.args.get("owner") or me()


TABS = {"mine": "My worklist", "team": "Team", "unassigned": "Unassigned"}
SORTS = {
    "urgency": "overdue first, then priority, then due date",
    "due": "due date",
    "patient": "patient name",
    "age": "oldest first",
}
PAGE_SIZES = (25, 50, 100)


def _sorted(rows: list[Any], how: str) -> list[Any]:
    if how == "due":
        return sorted(rows, key=lambda r: (r.due or "9999", r.task))
    if how == "patient":
        return sorted(rows, key=lambda r: (r.patient_name.lower(), r.due or "9999"))
    if how == "age":
        return sorted(rows, key=lambda r: (-(r.age_days or 0), r.task))
    return rows  # the view's own order: overdue, priority, due date


@pages.get("/")
def worklist_page() -> str:
    from ..views.rows import truncated
    from ..views.worklist import OPEN_STATUSES, PRIORITY_RANK, worklist
    from .actions import me

    owner = request.args.get("owner") or None
    chosen_tab = request.args.get("tab") or ("mine" if (owner or me()) else "team")
    tab = chosen_tab if chosen_tab in TABS else "mine"
    if tab == "mine":
        owner = owner or me()
    status = request.args.get("status") or ""
    priority = request.args.get("priority") or ""
    patient = patient_param()
    due_before = request.args.get("due_before") or None
    overdue_only = request.args.get("overdue") == "1"
    sort = request.args.get("sort") or "urgency"
    sort = sort if sort in SORTS else "urgency"
    size_text = request.args.get("page_size") or "25"
    page_size = int(size_text) if size_text in {str(n) for n in PAGE_SIZES} else 25
    page_text = request.args.get("page") or "1"
    page = int(page_text) if page_text.isdigit() and 0 < len(page_text) < 6 else 1
    rows, problem, incomplete = [], None, False
    try:
        rows = worklist(
            access().view_client(),
            owners=[owner] if tab == "mine" and owner else [],
            statuses=[status] if status else OPEN_STATUSES,
            patient=patient,
            due_before=due_before,
        )
        incomplete = truncated(rows)
        from .incoming_rows import with_partners_incoming

        rows = with_partners_incoming(
            rows, tab, owner, [status] if status else OPEN_STATUSES, patient, due_before
        )
    except FhircareError as exc:
        problem = exc.message
    if tab == "mine" and not owner:
        rows, problem = [], problem or "Choose who you are (top right) to see your worklist."
    if tab == "unassigned":
        rows = [r for r in rows if not r.owner]
    if priority in PRIORITY_RANK:
        rows = [r for r in rows if r.priority == priority]
    if overdue_only:
        rows = [r for r in rows if r.overdue]
    patients = sorted(
        {(r.patient, r.patient_name) for r in rows if r.patient and r.patient.count("/") == 1},
        key=lambda p: p[1].lower(),
    )
    with_gap = request.args.get("gap") == "1"
    if with_gap and rows:
        from ..views.gaps import find_gaps

        gapped = {
            gap.patient
            for gap in find_gaps(
                access().view_client(),
                owner=owner if tab == "mine" else None,
                patient=patient,
                settings=settings(),
            )
        }
        rows = [r for r in rows if r.patient in gapped]
    rows = _sorted(rows, sort)
    total = len(rows)
    pages_count = max(1, -(-total // page_size))
    page = min(page, pages_count)
    shown = rows[(page - 1) * page_size : page * page_size]
    args = {k: v for k, v in request.args.items() if k != "page"}
    from .patient_pages import cards_for
    from .pickers import care_teams

    ours = [r.patient for r in shown if r.patient and r.patient.count("/") == 1]  # not a partner's
    teams = care_teams(access().view_client(), set(ours))
    return render_template(
        "worklist.html",
        rows=shown,
        cards=cards_for(ours),
        incomplete=incomplete,
        teams=teams,
        total=total,
        overdue_count=sum(1 for r in rows if r.overdue),
        page=page,
        pages_count=pages_count,
        page_size=page_size,
        page_sizes=PAGE_SIZES,
        args=args,
        tab=tab,
        tabs=TABS,
        sort=sort,
        sorts=SORTS,
        owner=owner or "",
        status=status,
        priority=priority,
        priorities=tuple(PRIORITY_RANK),
        overdue_only=overdue_only,
        with_gap=with_gap,
        patients=patients,
        patient=patient or "",
        due_before=due_before or "",
        problem=problem,
        statuses=OPEN_STATUSES,
        me=me(),
    )


@pages.post("/tasks/<task_id>/action")
def task_action(task_id: str) -> Response:
    check_csrf()
    action = request.form.get("action", "")
    payload: dict[str, Any] = {"task": f"Task/{task_id}"}
    from .actions import me

    if action == "reassign":
        payload["owner"] = request.form.get("new_owner", "").strip()
    elif action == "claim":
        payload.update(owner=me() or "", claim=True)
    elif action in ACTIONS:
        payload["to"] = ACTIONS[action]
    elif action == "complete":  # never in one click: the task's page asks what was done, then offers Undo
        return _complete_on_its_page(payload["task"])
    else:
        abort(400, "unknown action")
    acting = me()  # who clicked (SMART fhirUser, or the development-mode choice), never the new owner
    if acting:
        payload["actor"] = acting
    from .banners import refusal_words, say_done, say_refused, task_subject

    try:
        run_workflow("task", payload, creates={"Provenance"})
        say_done(f"{DONE[action]}: {task_subject(payload['task'])}")
    except FhircareError as exc:
        if exc.status in (401, 403):
            raise
        say_refused(
            f"Not done: {task_subject(payload['task'])} was not changed. {refusal_words(exc, 'task')}"
        )
    return redirect(local_path(request.form.get("back"), url_for("pages.worklist_page")), code=303)


def _complete_on_its_page(task: str) -> Response:
    """A *Complete* posted from an older worklist: the task's page with *Complete* chosen (one read)."""
    from ..views.labels import reference_of
    from .task_address import local_patient

    patient = local_patient(reference_of(access().view_client().read_reference(task).get("for")))
    target = url_for(
        "pages.task_page",
        patient_id=patient.split("/")[1] if patient else None,
        task_id=task.split("/")[1],
        to="completed",
    )
    return redirect(f"{target}#status-h", code=303)


@pages.get("/patients/<patient_id>")
def summary_page(patient_id: str) -> str:
    from ..views.referrals import patient_referrals
    from ..views.summary import patient_summary
    from ..views.timeline import patient_timeline
    from .actions import TITLES
    from .context import summary_context
    from .patient_pages import cards_for

    client = access().view_client()
    summary = patient_summary(client, f"Patient/{patient_id}")
    referrals, closed = patient_referrals(client, summary.patient)
    from .partner_status import partner_words

    timeline, older = patient_timeline(client, summary.patient, settings().namespaces())
    from ..views.eligibility import eligibility_asked
    from ..views.tasks import task_words

    words = task_words(client, [t["reference"] for t in summary.open_tasks])
    asked = eligibility_asked(client, summary.patient) if summary.coverage else {}
    return render_template(
        "summary.html",
        s=summary,
        referrals=referrals,
        partner_states=partner_words(referrals),
        closed=closed,
        timeline=timeline,
        older=older,
        words=words,
        asked=asked,
        card=cards_for([summary.patient]).get(summary.patient),
        patient_id=patient_id,
        context=summary_context(client, summary),
        actions=TITLES,
    )


@pages.app_template_global()
def take_flash() -> str | None:
    message = session.pop("flash", None)
    return str(message) if message else None
