"""Cancel goes to the partner first (If-Match on the version we have caught up to).

Taken: the partner's Task cancelled, then ours cancelled and our ServiceRequest revoked, in one
transaction. The partner's Task already terminal (or turned terminal meanwhile): nothing changes on
either side, a conflict is recorded. The partner unreachable: our Task shows the cancel as pending
(``businessStatus``), and sync applies it when the partner answers.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, replace
from typing import Any

from ..care.task_states import TERMINAL
from ..errors import IllegalTransition, PreconditionFailed
from ..fhir.transport import weak_etag
from .apply import apply_remote, write_version
from .conflicts import after_catch_up, conflict_task_entry
from .context import Exchange, PartnerThrottled, PartnerUnreachable, stamp
from .cursor import update_pending
from .links import Conflict, Link, read_link, updated_of, version_of, write_link

log = logging.getLogger("fhircare.exchange")

STATUS_SYSTEM = "CodeSystem/exchange-status"


@dataclass(frozen=True)
class Cancelled:
    task: str
    outcome: str  # cancelled | pending | conflict
    conflict: Conflict | None = None
    #: the link holds an open conflict afterwards: this cancel's, or one the catch-up before it recorded
    #: (a remote version that clashed with the pending cancel) - counted in the partner's state either way
    conflict_open: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "outcome": self.outcome,
            "conflict": self.conflict.to_json() if self.conflict else None,
        }


def pending_status(exchange: Exchange) -> dict[str, Any]:
    system = f"{exchange.namespace_base.rstrip('/')}/{STATUS_SYSTEM}"
    return {
        "coding": [{"system": system, "code": "cancel-pending"}],
        "text": "cancel pending: partner unreachable",
    }


def provenance(exchange: Exchange, task_id: str, activity: str) -> dict[str, Any]:
    """Our own change to a referral (cancel, resolve), by our Organization."""
    return {
        "fullUrl": f"urn:uuid:{uuid.uuid4()}",
        "resource": {
            "resourceType": "Provenance",
            "target": [{"reference": f"Task/{task_id}"}],
            "recorded": stamp(),
            "activity": {"text": activity},
            "agent": [{"who": {"reference": exchange.partners.organization}}],
        },
        "request": {"method": "POST", "url": "Provenance"},
    }


def _revoke(exchange: Exchange, ours: dict[str, Any]) -> list[dict[str, Any]]:
    focus = str((ours.get("focus") or {}).get("reference") or "")
    if not focus.startswith("ServiceRequest/"):
        return []
    request = exchange.local.read_reference(focus)
    if request.get("status") in ("completed", "revoked", "entered-in-error"):
        return []
    revoked = {**request, "status": "revoked"}
    return [
        {
            "resource": revoked,
            "request": {"method": "PUT", "url": focus, "ifMatch": weak_etag(version_of(request))},
        }
    ]


Outcome = tuple[dict[str, Any], Link, str, dict[str, Any]]


def _cancel_remote(exchange: Exchange, ours: dict[str, Any], link: Link, reason: str) -> Outcome:
    """Cancel the partner's Task with If-Match on its current version, after catching up with the
    versions before it (so each performer status still reaches ours, in order). A terminal one is
    left alone on both sides: the outcome is a conflict."""
    partner = exchange.partners.get(link.partner)
    remote = exchange.remote(partner.name)
    rid = link.remote.rstrip("/").rsplit("/", 1)[1]
    for _ in range(5):
        current = remote.read("Task", rid)
        status = str(current.get("status"))
        if status in TERMINAL and status != "cancelled":
            return ours, link, "conflict", current
        _, ours = apply_remote(exchange, partner, current, ours)
        link = read_link(ours, exchange.namespace_base) or link
        if status == "cancelled":
            return ours, link, "cancelled", current
        body = {**current, "status": "cancelled", "statusReason": {"text": reason}}
        try:
            written = remote.update(body, if_match=version_of(current))
        except PreconditionFailed:
            continue
        return (
            ours,
            replace(
                link, version=version_of(written), updated=updated_of(written), remote_status="cancelled"
            ),
            "cancelled",
            written,
        )
    raise PreconditionFailed("the partner's Task kept changing while it was being cancelled")


def _settle(exchange: Exchange, done: Outcome, reason: str) -> Cancelled:
    ours, link, outcome, remote = done
    task_id = str(ours["id"])
    if outcome == "conflict":
        clash = Conflict(
            str(ours.get("status")), version_of(ours), str(remote.get("status")), version_of(remote)
        )
        updated = dict(ours)
        updated.pop("businessStatus", None)
        write_version(
            exchange,
            write_link(updated, replace(link, conflict=clash, cancel_reason=None), exchange.namespace_base),
            [conflict_task_entry(exchange, ours, link.partner, clash)],
        )
        update_pending(exchange, link.partner, task_id, True, kind="conflict")
        return Cancelled(f"Task/{task_id}", "conflict", clash, conflict_open=True)
    updated = {**ours, "status": "cancelled", "statusReason": {"text": reason}}
    updated.pop("businessStatus", None)
    updated = write_link(
        updated, replace(link, cancel_reason=None, synced_at=stamp()), exchange.namespace_base
    )
    write_version(exchange, updated, [provenance(exchange, task_id, "cancel"), *_revoke(exchange, ours)])
    if link.conflict is not None:  # recorded while catching up (apply_remote): counted like any conflict
        update_pending(exchange, link.partner, task_id, True, kind="conflict")
    return Cancelled(f"Task/{task_id}", "cancelled", conflict_open=link.conflict is not None)


def cancel(exchange: Exchange, task_id: str, reason: str) -> Cancelled:
    """``fhircare exchange cancel Task/<id> --reason TEXT``."""
    ours = exchange.local.read("Task", task_id)
    if ours.get("status") in TERMINAL:
        raise IllegalTransition(f"Task/{task_id} is already {ours.get('status')}")
    link = read_link(ours, exchange.namespace_base)
    if link is None:  # never sent: only ours to cancel
        return _local_only(exchange, ours, reason)
    try:
        done = _cancel_remote(exchange, ours, link, reason)
    except (PartnerUnreachable, PartnerThrottled):  # down, or throttling past the budget: queued
        ours, link = after_catch_up(exchange, task_id, link)
        waiting = {**ours, "businessStatus": pending_status(exchange)}
        waiting = write_link(waiting, replace(link, cancel_reason=reason[:200]), exchange.namespace_base)
        write_version(exchange, waiting)
        update_pending(exchange, link.partner, task_id, True)
        log.warning("cancel pending: partner not answering now", extra={"partner": link.partner})
        return Cancelled(f"Task/{task_id}", "pending", conflict_open=link.conflict is not None)
    return _settle(exchange, done, reason)


def _local_only(exchange: Exchange, ours: dict[str, Any], reason: str) -> Cancelled:
    task_id = str(ours["id"])
    updated = {**ours, "status": "cancelled", "statusReason": {"text": reason}}
    write_version(exchange, updated, [provenance(exchange, task_id, "cancel"), *_revoke(exchange, ours)])
    return Cancelled(f"Task/{task_id}", "cancelled")


def retry_cancel(exchange: Exchange, task_id: str) -> Cancelled:
    """A pending cancel, tried again (sync): outcome cancelled | conflict | pending."""
    ours = exchange.local.read("Task", task_id)
    link = read_link(ours, exchange.namespace_base)
    if link is None or not link.cancel_reason:
        return Cancelled(f"Task/{task_id}", "cancelled", conflict_open=bool(link and link.conflict))
    reason = link.cancel_reason
    try:
        done = _cancel_remote(exchange, ours, link, reason)
    except (PartnerUnreachable, PartnerThrottled):
        _, link = after_catch_up(exchange, task_id, link)
        return Cancelled(f"Task/{task_id}", "pending", conflict_open=link.conflict is not None)
    return _settle(exchange, done, reason)
