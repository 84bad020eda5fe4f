"""A conflict as the coordinator meets it: a Task for the referral's requester, in their worklist.

Made with the conflict (same transaction, conditional create keyed on our Task and the remote version),
completed by ``exchange resolve`` (If-Match). The conflict itself - both statuses and versions - stays on
our Task's link until then, so neither side's value is lost.
"""

from __future__ import annotations

import uuid
from typing import Any

from .. import clock
from ..fhir.transport import weak_etag
from .context import Exchange
from .cursor import update_pending
from .links import Conflict, Link, read_link, version_of

CONFLICT_ID = "sid/exchange-conflict"


def _identifier(exchange: Exchange, task_id: str, conflict: Conflict) -> tuple[str, str]:
    system = f"{exchange.namespace_base.rstrip('/')}/{CONFLICT_ID}"
    return system, f"{exchange.partners.absolute(f'Task/{task_id}')}#{conflict.remote_version}"


def conflict_task_entry(
    exchange: Exchange, ours: dict[str, Any], partner: str, conflict: Conflict
) -> dict[str, Any]:
    """The transaction entry creating (once) the requester's Task for this conflict."""
    system, value = _identifier(exchange, str(ours["id"]), conflict)
    owner = ours.get("requester") or {"reference": exchange.partners.organization}
    task = {
        "resourceType": "Task",
        "identifier": [{"system": system, "value": value}],
        "status": "requested",
        "intent": "order",
        "priority": "urgent",
        "description": (
            f"Referral conflict with {partner}: ours {conflict.local_status}, theirs {conflict.remote_status}."
            f" Resolve with: fhircare exchange resolve Task/{ours['id']} --take local|remote"
        ),
        "focus": {"reference": f"Task/{ours['id']}"},
        "owner": owner,
        "authoredOn": clock.now().isoformat(timespec="seconds"),
    }
    if ours.get("for"):
        task["for"] = ours["for"]
    return {
        "fullUrl": f"urn:uuid:{uuid.uuid4()}",
        "resource": task,
        "request": {"method": "POST", "url": "Task", "ifNoneExist": f"identifier={system}|{value}"},
    }


def close_conflict_task(exchange: Exchange, task_id: str, conflict: Conflict) -> list[dict[str, Any]]:
    """The transaction entry completing the requester's Task for this conflict (none when absent)."""
    system, value = _identifier(exchange, task_id, conflict)
    found = exchange.local.search("Task", {"identifier": f"{system}|{value}"}).first()
    if found is None or found.get("status") in ("completed", "cancelled"):
        return []
    done = {**found, "status": "completed"}
    return [
        {
            "resource": done,
            "request": {
                "method": "PUT",
                "url": f"Task/{found['id']}",
                "ifMatch": weak_etag(version_of(found)),
            },
        }
    ]


def after_catch_up(exchange: Exchange, task_id: str, link: Link) -> tuple[dict[str, Any], Link]:
    """Our Task and its link as a cancel or a push that stopped half-way left them (its catch-up with
    the partner's versions may have applied some, or recorded a conflict: counted here like any other
    in the partner's sync state)."""
    ours = exchange.local.read("Task", task_id)
    link = read_link(ours, exchange.namespace_base) or link
    if link.conflict is not None:
        update_pending(exchange, link.partner, task_id, True, kind="conflict")
    return ours, link
