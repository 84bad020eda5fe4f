"""fhircare as a coordination platform (Gravity SDOH CC indirect pattern): ``exchange forward``.

A referral Task that came to us (its requester's references absolute) is forwarded to the next partner:
our own ServiceRequest (``intent filler-order``, ``basedOn`` the requester's) and our own Task
(``partOf`` the incoming one), each made by a conditional create keyed on the incoming Task, then sent
as any referral. The partner's progress, replayed onto our Task, is mirrored onto the incoming Task in
the same transaction; a cancel of the incoming Task goes down the chain.
"""

from __future__ import annotations

from typing import Any

from .. import clock
from ..care.task_states import TERMINAL
from ..errors import PayloadError
from ..fhir.transport import weak_etag
from .context import Exchange
from .cursor import update_pending
from .links import version_of
from .send import send

FORWARDED = "sid/exchange-forwarded-from"
MIRRORED = ("status", "statusReason", "output")


def _key(exchange: Exchange, incoming_id: str) -> tuple[str, str]:
    system = f"{exchange.namespace_base.rstrip('/')}/{FORWARDED}"
    return system, exchange.partners.absolute(f"Task/{incoming_id}")


def forward(exchange: Exchange, incoming_id: str, to: str) -> dict[str, Any]:
    """Our ServiceRequest and Task for an incoming referral, sent to partner ``to`` (all exactly once)."""
    partner = exchange.partners.get(to)
    incoming = exchange.local.read("Task", incoming_id)
    if incoming.get("status") in TERMINAL:
        raise PayloadError(f"Task/{incoming_id} is {incoming.get('status')}: nothing to forward")
    system, value = _key(exchange, incoming_id)
    identifier = [{"system": system, "value": value}]
    condition = f"identifier={system}|{value}"
    request: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "identifier": identifier,
        "status": "active",
        "intent": "filler-order",
        "subject": incoming.get("for") or {},
        "requester": {"reference": exchange.partners.organization},
        "performer": [{"reference": partner.organization}],
        "authoredOn": clock.now().isoformat(timespec="seconds"),
    }
    if incoming.get("focus"):
        request["basedOn"] = [incoming["focus"]]
    request["code"] = incoming.get("code") or {"text": incoming.get("description") or "referral"}
    made = exchange.local.create(request, if_none_exist=condition)
    focus = {"reference": f"ServiceRequest/{made['id']}"}
    task: dict[str, Any] = {
        "resourceType": "Task",
        "identifier": identifier,
        "status": "requested",
        "intent": "order",
        "partOf": [{"reference": f"Task/{incoming_id}"}],
        "focus": focus,
        "basedOn": [focus],
        "for": incoming.get("for") or {},
        "requester": {"reference": exchange.partners.organization},
        "owner": {"reference": partner.organization},
        "authoredOn": clock.now().isoformat(timespec="seconds"),
    }
    for name in ("code", "description", "priority"):
        if incoming.get(name):
            task[name] = incoming[name]
    ours = exchange.local.create(task, if_none_exist=condition)
    update_pending(exchange, to, f"{ours['id']}|{incoming_id}", True, kind="forwarded")
    sent = send(exchange, str(ours["id"]))
    return {
        "incoming": f"Task/{incoming_id}",
        "task": f"Task/{ours['id']}",
        "service_request": f"ServiceRequest/{made['id']}",
        "partner": to,
        "remote": sent.remote,
    }


def mirror_entries(exchange: Exchange, ours: dict[str, Any]) -> list[dict[str, Any]]:
    """Transaction entries putting our Task's status, reason and outputs onto the Task it is part of
    (If-Match on the incoming Task; nothing for a Task that is part of none, or a final one)."""
    entries = []
    for part in ours.get("partOf") or []:
        ref = str(part.get("reference") or "")
        if not ref.startswith("Task/") or ours.get("status") == "requested":
            continue
        incoming = exchange.local.read_reference(ref)
        if incoming.get("status") in TERMINAL:
            continue
        mirrored = dict(incoming)
        for name in MIRRORED:
            if ours.get(name):
                mirrored[name] = ours[name]
            else:
                mirrored.pop(name, None)
        if all(mirrored.get(n) == incoming.get(n) for n in MIRRORED):
            continue
        entries.append(
            {
                "resource": mirrored,
                "request": {"method": "PUT", "url": ref, "ifMatch": weak_etag(version_of(incoming))},
            }
        )
    return entries


def cancels_from_upstream(exchange: Exchange, forwarded: set[str]) -> list[tuple[str, str | None]]:
    """Our forwarded Tasks whose incoming Task was cancelled upstream (one batch read of the incoming
    Tasks): (our Task id, reason); reason None when ours is final and needs no more watching."""
    pairs = [p.split("|", 1) for p in sorted(forwarded) if "|" in p]
    if not pairs:
        return []
    found = exchange.local.read_found([f"Task/{t}" for pair in pairs for t in pair])
    out: list[tuple[str, str | None]] = []
    for ours_id, incoming_id in pairs:
        ours, incoming = found.get(f"Task/{ours_id}"), found.get(f"Task/{incoming_id}")
        if ours is None or incoming is None or ours.get("status") in TERMINAL:
            out.append((ours_id, None))
        elif incoming.get("status") == "cancelled":
            out.append((ours_id, (incoming.get("statusReason") or {}).get("text") or "cancelled upstream"))
    return out
