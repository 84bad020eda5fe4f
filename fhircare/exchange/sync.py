"""One sync cycle per partner: send what is unsent, retry pending cancels, then poll the partner for
changes since the cursor (its own timestamps, moved back by the overlap) and replay them onto ours.

Polling is the truth: a notification only wakes the cycle, so a lost, repeated or reordered one changes
nothing. The cursor moves only past remote Tasks whose changes are committed on our side.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from ..clock import now as clock_now
from ..errors import PreconditionFailed, TransientError
from .apply import apply_remote
from .context import Exchange, PartnerAnswerError, PartnerThrottled, PartnerUnreachable, stamp
from .cursor import Cursor, load_cursor, save_cursor, update_pending
from .links import identifier_value, read_link, updated_of, version_of
from .paging import ServerTime, keyset_pages
from .partners import Partner
from .send import is_sent, mark_sent, owned_since, send, source_tag

log = logging.getLogger("fhircare.exchange")

PAGE = 100


@dataclass
class CycleReport:
    """What one cycle did for one partner (the ``sync --once`` JSON)."""

    sent: int = 0
    applied: int = 0
    conflicts: int = 0
    reachable: bool = True
    cursor: str | None = None
    errors: int = 0
    subscription: str | None = None  # the partner's Subscription, when one was made

    def to_json(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "applied": self.applied,
            "conflicts": self.conflicts,
            "reachable": self.reachable,
            "cursor": self.cursor,
        }


def _changes(exchange: Exchange, partner: Partner, cursor: Cursor, clock: ServerTime) -> Any:
    """The partner's Tasks from us changed since the cursor (minus the overlap), oldest first, paged."""
    system, code = source_tag(exchange)
    params = [("_tag", f"{system}|{code}")]
    since = cursor.since(partner.overlap)
    return keyset_pages(exchange.remote(partner.name), "Task", params, since, PAGE, clock)


def _ours(exchange: Exchange, remote_tasks: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Our Tasks named by the remote ones' identifiers - and the ServiceRequests of those completed
    there, which their completion updates - read in one batch."""
    wanted = []
    for task in remote_tasks:
        local = exchange.partners.local(identifier_value(task) or "")
        if local and local.startswith("Task/"):
            wanted.append(local)
            focus = exchange.partners.local(str((task.get("focus") or {}).get("reference") or ""))
            if task.get("status") == "completed" and focus and focus.startswith("ServiceRequest/"):
                wanted.append(focus)
    # our Task refused (403) is no absence: the cycle stops rather than moving past the change
    return exchange.local.read_found(wanted, forbidden_hidden=False) if wanted else {}


def _apply_one(
    exchange: Exchange,
    partner: Partner,
    latest: dict[str, Any],
    ours: dict[str, Any],
    known: dict[str, dict[str, Any]],
) -> tuple[int, int]:
    """Apply one remote Task; our Task moved meanwhile (another worker) -> read it again and redo."""
    for _ in range(5):
        try:
            done, task = apply_remote(exchange, partner, latest, ours, known)
            # an open conflict on the link counts, also one an attempt before this retry recorded
            link = read_link(task, exchange.namespace_base)
            return done.applied, done.conflicts or int(link is not None and link.conflict is not None)
        except PreconditionFailed:
            ours = exchange.local.read("Task", str(ours["id"]))
            known = {}
    raise PreconditionFailed(f"Task/{ours['id']} kept changing while a partner change was applied")


def poll(exchange: Exchange, partner: Partner, cursor: Cursor, report: CycleReport) -> None:
    clock = ServerTime()
    for page in _changes(exchange, partner, cursor, clock):
        fresh = [t for t in page if not cursor.is_seen(str(t.get("id")), version_of(t))]
        ours = _ours(exchange, fresh)
        for latest in fresh:
            local = exchange.partners.local(identifier_value(latest) or "")
            if local in ours:
                applied, conflicts = _apply_one(exchange, partner, latest, ours[local], ours)
                report.applied += applied
                if conflicts:
                    cursor.conflict(local.split("/")[1])
            cursor.advance(str(latest["id"]), version_of(latest), updated_of(latest))
    cursor.searched_at(clock.value, partner.overlap)  # every page read and applied
    cursor.polled(clock_now())  # we heard from the partner (written at most once per POLLED_AT_EVERY)


def _snapshot(cursor: Cursor) -> tuple[Any, ...]:
    return (
        cursor.value,
        dict(cursor.seen),
        cursor.unreachable_since,
        cursor.last_error,
        cursor.local,
        cursor.horizon,
        cursor.local_horizon,
        cursor.indexed,
        cursor.polled_at,
    )


def sync_partner(exchange: Exchange, partner: Partner) -> CycleReport:
    """One cycle for one partner. An unreachable partner changes no referral: it is only recorded."""
    from .cancel import cancel, retry_cancel
    from .forward import cancels_from_upstream
    from .push import push_if_changed

    report = CycleReport()
    cursor = load_cursor(exchange, partner.name)
    before = _snapshot(cursor)
    try:
        local_clock = ServerTime()
        # once (first cycle, or the first after an upgrade): every owned Task, so each sent one gets the
        # identifier naming its partner; a new state has no local cursor, so that pass costs nothing more
        full = cursor.indexed is None
        since = None if full else cursor.since(partner.overlap, local=True)
        for task in owned_since(exchange, partner, since, local_clock):
            if not is_sent(exchange, task):
                if task.get("status") == "requested":
                    report.sent += send(exchange, str(task["id"]), task).created
            else:
                try:
                    pushed = push_if_changed(exchange, partner, mark_sent(exchange, task) if full else task)
                    report.applied += pushed.applied
                    if pushed.conflict_open:  # the edit's own conflict, or one its catch-up recorded
                        cursor.conflict(str(task["id"]))
                except PreconditionFailed:
                    full = False  # not every Task seen: the pass is done again next cycle
                    break  # our Task moved meanwhile: the next cycle sees it again (cursor not past it)
            # the Task's time before our write: later ones are still to do; the written version
            # comes back in a later search and moves the cursor then
            cursor.sent(updated_of(task))
        if full:
            cursor.indexed = "1"
        cursor.searched_at(local_clock.value, partner.overlap, local=True)
        for task_id, reason in cancels_from_upstream(exchange, cursor.forwarded):
            pair = next(p for p in cursor.forwarded if p.startswith(f"{task_id}|"))
            if reason is not None:  # taken, a conflict, or pending (then retried below like any cancel)
                if cancel(exchange, task_id, reason).conflict_open:
                    cursor.conflict(task_id)
            update_pending(exchange, partner.name, pair, False, kind="forwarded")
        for task_id in sorted(cursor.pending):
            retried = retry_cancel(exchange, task_id)
            if retried.outcome != "pending":
                update_pending(exchange, partner.name, task_id, False)
            if retried.conflict_open:  # the cancel's conflict, or one its catch-up recorded
                cursor.conflict(task_id)
        poll(exchange, partner, cursor, report)
        cursor.unreachable_since = None
        cursor.last_error = None
    except PartnerThrottled as exc:  # there and answering, only not now: no business event, not down
        report.errors += 1  # the cursor is not past what it did not read: the next cycle applies it
        cursor.last_error = type(exc).__name__
        log.warning("partner throttled", extra={"partner": partner.name, "retry_after": exc.retry_after})
    except PartnerUnreachable:
        report.reachable = False
        cursor.unreachable_since = cursor.unreachable_since or stamp()
        log.warning("partner unreachable", extra={"partner": partner.name})
    except PartnerAnswerError as exc:
        report.errors += 1
        cursor.last_error = type(exc).__name__
        log.warning(
            "partner answer not applied", extra={"partner": partner.name, "error": type(exc).__name__}
        )
    except TransientError as exc:  # our server failed (a 5xx, throttled past the budget): no business event
        report.errors += 1  # the cursor is not past the change that met it: the next cycle applies it
        cursor.last_error = type(exc).__name__
        log.warning("our server failed", extra={"partner": partner.name, "error": type(exc).__name__})
    if _snapshot(cursor) != before or cursor.added:
        cursor = save_cursor(exchange, cursor, partner.overlap)
    report.cursor = cursor.value
    report.conflicts = len(cursor.conflicts)
    report.subscription = cursor.subscription
    return report


def sync_once(exchange: Exchange, only: str | None = None) -> dict[str, Any]:
    """One cycle for every partner (or one): ``{"partners": {name: report}}``."""
    names = [only] if only else sorted(exchange.partners.partners)
    out = {}
    for name in names:
        out[name] = sync_partner(exchange, exchange.partners.get(name)).to_json()
    return {"partners": out}
