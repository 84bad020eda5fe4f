"""The FHIR R4 Task state machine (http://hl7.org/fhir/R4/task.html#statemachine), as coordinators use it."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from ..errors import Conflict, IllegalTransition, Issue

TRANSITIONS: dict[str, frozenset[str]] = {
    "draft": frozenset({"requested", "cancelled"}),
    "requested": frozenset({"received", "accepted", "rejected", "ready", "cancelled"}),
    "received": frozenset({"accepted", "rejected", "cancelled"}),
    "accepted": frozenset({"ready", "in-progress", "cancelled"}),  # on-hold only once work has started
    "ready": frozenset({"in-progress", "on-hold", "failed", "completed", "cancelled"}),
    "in-progress": frozenset({"on-hold", "failed", "completed", "cancelled"}),
    "on-hold": frozenset({"in-progress", "ready", "failed", "cancelled"}),
    "completed": frozenset(),
    "rejected": frozenset(),
    "cancelled": frozenset(),
    "failed": frozenset(),
    "entered-in-error": frozenset(),
}
#: statuses a Task never leaves
TERMINAL = frozenset(s for s, nxt in TRANSITIONS.items() if not nxt)
#: statuses of a Task someone still has to act on (the worklist, the gap rules)
OPEN_STATUSES = ("draft", "requested", "received", "accepted", "ready", "in-progress", "on-hold")
#: statuses a statusReason explains (SDOHCC 3.0.0 Task.statusReason: rejected, cancelled, on-hold, failed)
REASONED = frozenset({"rejected", "cancelled", "on-hold", "failed"})


def check_transition(current: str, target: str) -> None:
    """Refuse a move the state machine does not allow (IllegalTransition naming ``$.to``)."""
    if target == "entered-in-error":
        return  # any record can be marked as entered in error
    if current == target:
        raise IllegalTransition(f"the Task is already {current}")
    allowed = TRANSITIONS.get(current)
    if allowed is None:
        raise IllegalTransition(f"the Task has an unknown status {current!r}; fhircare will not move it")
    if target not in allowed:
        options = ", ".join(sorted(allowed)) or "none: it is final"
        raise IllegalTransition(
            f"a Task cannot go from {current} to {target} (allowed from {current}: {options})",
            [Issue("error", "business-rule", f"{current} -> {target} is not a Task transition", ("$.to",))],
        )


# -- undoing a completion ------------------------------------------------------------------------
# R4's state machine has no way out of ``completed``. A completion made by mistake may be undone for a
# short window (Settings.undo_window_minutes), by putting back the version before it; after that it
# stands, and only a new Task (or entered-in-error) reverses it.

#: the extension our Task carries once sent to a partner (``fhircare.exchange.links.LINK``, the exchange's
#: own; named here because exchange sits above this layer): the partner's status then owns the Task
PARTNER_LINK = "/StructureDefinition/exchange-link"


def partner_link(task: dict[str, Any]) -> dict[str, Any] | None:
    """The exchange link extension our Task carries once sent to a partner, or None."""
    for ext in task.get("extension") or []:
        if isinstance(ext, dict) and str(ext.get("url") or "").endswith(PARTNER_LINK):
            return ext
    return None


def sent_to_partner(task: dict[str, Any]) -> bool:
    """True when the Task was sent to a partner organization (it carries the exchange link)."""
    return partner_link(task) is not None


#: the rule a refused status on a sent referral names
PARTNER_SETS = "the partner sets this status: it comes back by sync"


def check_requester_status(task: dict[str, Any], target: str) -> None:
    """On a referral sent to a partner the partner's server holds its status: the requester may only
    mark it entered-in-error here; it cancels through the exchange (``fhircare exchange cancel``, which
    goes to the partner first); every other status is the partner's, applied here by sync only."""
    if target == "entered-in-error" or not sent_to_partner(task):
        return
    if target == "cancelled":
        text = (
            "the Task was sent to a partner organization: cancel it with `fhircare exchange cancel` "
            "(POST /api/v1/exchange/cancel), which cancels the partner's Task first; nothing was written"
        )
        rule = "a sent referral is cancelled through the exchange, which goes to the partner first"
    else:
        text = f"{PARTNER_SETS} (the Task was sent to a partner organization); nothing was written"
        rule = f"{PARTNER_SETS} ({target} on a referral sent to a partner)"
    raise IllegalTransition(text, [Issue("error", "business-rule", rule, ("$.to",))])


def completion_provenance(
    current: dict[str, Any], before: dict[str, Any] | None, provenances: Iterable[dict[str, Any]]
) -> dict[str, Any] | None:
    """The Provenance of the fhircare run that made ``current`` out of ``before``: the one naming
    ``before`` as the version it revised (every run's If-Match update does); None when no run of
    fhircare's made it (the EHR, a partner's tool, ``exchange work``)."""
    version = str(((before or {}).get("meta") or {}).get("versionId") or "")
    if not version:
        return None
    revised = f"Task/{current.get('id')}/_history/{version}"
    for provenance in provenances:
        for entity in provenance.get("entity") or []:
            what = (entity.get("what") or {}).get("reference") if isinstance(entity, dict) else None
            if entity.get("role") == "revision" and isinstance(what, str):
                if what == revised or what.endswith("/" + revised):
                    return provenance
    return None


def completion_time(
    current: dict[str, Any],
    before: dict[str, Any] | None,
    provenances: Iterable[dict[str, Any]] | None = None,
) -> datetime | None:
    """When ``current`` (the newest version) completed the Task, the version ``before`` it not being
    completed; None when ``current`` is not that completion (not completed, or changed since).

    With the Provenances that target the Task (``provenances``): the ``recorded`` time of the fhircare
    run that made the completion (fhircare's clock, written in the completion's own transaction), else
    the server's ``meta.lastUpdated`` of the completing version (the server's clock). Never
    ``Task.lastModified``, which whoever writes the Task chooses. Without ``provenances`` (a display
    that did not read them): ``lastModified``, else ``meta.lastUpdated``."""
    if current.get("status") != "completed" or not before or before.get("status") == "completed":
        return None
    updated = (current.get("meta") or {}).get("lastUpdated")
    if provenances is None:
        stamp = current.get("lastModified") or updated
    else:
        run = completion_provenance(current, before, provenances)
        stamp = run.get("recorded") if run is not None else updated
    try:
        moment = datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def check_undo(
    current: dict[str, Any],
    before: dict[str, Any] | None,
    now: datetime,
    window: timedelta,
    version: str | None = None,
    partners: frozenset[str] = frozenset(),
    provenances: Sequence[dict[str, Any]] = (),
) -> None:
    """Refuse undoing the completion of ``current`` (``before``: the version before it) unless it is
        the newest version (and ``version``, when given), was not sent to a partner, is not owned by one
        of the ``partners``' Organizations (the light pattern: their staff work on our server), and ``now``
        is within ``window`` of the completion (its time: :func:`completion_time` with ``provenances``, the
    Provenances that target the Task). Each refusal names its rule."""
    status = current.get("status")
    if status != "completed":
        raise IllegalTransition(
            f"the Task is {status}, not completed: there is no completion to undo",
            [
                Issue(
                    "error",
                    "business-rule",
                    f"the Task is {status}, not completed: there is no completion to undo",
                    ("$.task",),
                )
            ],
        )
    if sent_to_partner(current):
        raise IllegalTransition(
            "the Task was sent to a partner organization: its status is the partner's, so its completion "
            "cannot be undone here; nothing was written",
            [
                Issue(
                    "error",
                    "business-rule",
                    "the Task was sent to a partner organization: its status is the partner's, its completion cannot be undone here",
                    ("$.task",),
                )
            ],
        )
    if (current.get("owner") or {}).get("reference") in partners:
        text = (
            "the Task is owned by a partner organization, whose staff set its status: the completion is "
            "theirs and cannot be undone here; nothing was written"
        )
        raise IllegalTransition(text, [Issue("error", "business-rule", text, ("$.task",))])
    newest = str((current.get("meta") or {}).get("versionId") or "")
    completed = completion_time(current, before, provenances)
    if completed is None or (version is not None and version != newest):
        raise Conflict(
            "the Task changed after it was completed (a note, a new owner or another change): undo only "
            "takes back a completion nothing has followed; nothing was written",
            [
                Issue(
                    "error",
                    "conflict",
                    "the Task changed after it was completed: undo only takes back a completion nothing has followed",
                    ("$.version",),
                )
            ],
        )
    closes = completed + window
    if now >= closes:
        minutes = f"{window.total_seconds() / 60:g}"
        raise IllegalTransition(
            f"a completion can be undone for {minutes} minutes only: this one was made at {_utc(completed)} "
            f"and its undo window closed at {_utc(closes)}; nothing was written (a completion that stands "
            "is reversed by a new task, or marked entered-in-error when it was never true)",
            [
                Issue(
                    "error",
                    "business-rule",
                    f"the {minutes}-minute undo window closed at {_utc(closes)}: the completion stands",
                    ("$.task",),
                )
            ],
        )


def undo_closes(completed: datetime | None, window: timedelta) -> datetime | None:
    """When the undo window of a completion made at ``completed`` closes (None: no completion)."""
    return None if completed is None else completed + window


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
