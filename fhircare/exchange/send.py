"""Send exactly once: the partner's Task by a conditional create keyed on our Task's absolute URL.

A lost answer, a retry, a crash between the remote create and our link, or two senders at once all
meet the same ``If-None-Exist: identifier=urn:ietf:rfc:3986|<our Task's URL>`` on the partner: one
remote Task, ever. Our Task records the link afterwards with If-Match; whoever loses that race reads
the link the winner wrote.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..errors import PayloadError, PreconditionFailed
from ..fhir.outcome import json_body
from .context import Exchange, absolute_reference, stamp
from .links import (
    URL_SYSTEM,
    Link,
    field_digests,
    identifier_value,
    names_partner,
    read_link,
    updated_of,
    version_of,
    write_link,
)
from .paging import ServerTime, keyset_pages
from .partners import Partner

log = logging.getLogger("fhircare.exchange")

TASK_PROFILE = "http://hl7.org/fhir/us/sdoh-clinicalcare/StructureDefinition/SDOHCC-TaskForReferralManagement"
#: the tag on every Task we create on a partner's server: its polling searches by it
SOURCE_TAG = "CodeSystem/exchange-source"
#: requester-owned fields copied to the partner (the performer may change none of them)
COPIED = ("intent", "priority", "code", "description", "authoredOn", "restriction", "note")
#: the requester-owned fields of the partner's Task (owner is not: a performer may claim an unowned Task)
OWNED = (*COPIED, "focus", "basedOn", "for", "requester", "identifier")


@dataclass(frozen=True)
class Sent:
    task: str
    partner: str
    remote: str
    created: bool
    updated: str = ""  # our Task's meta.lastUpdated once linked (our server's clock)

    def to_json(self) -> dict[str, Any]:
        return {"task": self.task, "partner": self.partner, "remote": self.remote, "created": self.created}


def source_tag(exchange: Exchange) -> tuple[str, str]:
    """(system, code) of the tag naming us on a partner's Tasks: our Organization's absolute URL."""
    return (
        f"{exchange.namespace_base.rstrip('/')}/{SOURCE_TAG}",
        exchange.partners.absolute(exchange.partners.organization),
    )


def remote_task(exchange: Exchange, task: dict[str, Any]) -> dict[str, Any]:
    """The partner's Task for our Task: absolute references back, status requested."""
    base = exchange.partners.base
    ours = exchange.partners.absolute(f"Task/{task['id']}")
    system, code = source_tag(exchange)
    out: dict[str, Any] = {
        "resourceType": "Task",
        "meta": {"profile": [TASK_PROFILE], "tag": [{"system": system, "code": code}]},
        "identifier": [{"system": URL_SYSTEM, "value": ours}],
        "status": "requested",
    }
    for name in COPIED:
        if task.get(name) is not None:
            out[name] = task[name]
    out.setdefault("intent", "order")
    focus = absolute_reference(task.get("focus"), base)
    if focus:
        out["focus"] = focus
        out["basedOn"] = [focus]
    for name in ("for", "requester"):
        ref = absolute_reference(task.get(name), base)
        if ref:
            out[name] = ref
    return out


def partner_of(exchange: Exchange, task: dict[str, Any]) -> Partner:
    owner = (task.get("owner") or {}).get("reference")
    partner = exchange.partners.owning(owner)
    if partner is None:
        raise PayloadError(
            f"Task/{task.get('id')} is owned by no partner (owner {owner or 'missing'}): nothing sent"
        )
    return partner


def check_disclosure(exchange: Exchange, partner: Partner, task: dict[str, Any]) -> None:
    """``consent-required``: an active Consent of the patient naming the partner's Organization."""
    if partner.disclosure != "consent-required":
        return
    patient = (task.get("for") or {}).get("reference")
    if patient:
        for consent in exchange.local.search("Consent", {"patient": patient, "status": "active"}):
            provisions = [consent.get("provision") or {}]
            provisions += provisions[0].get("provision") or []
            for provision in provisions:
                if provision.get("type", "permit") != "permit":
                    continue
                actors = [(a.get("reference") or {}).get("reference") for a in provision.get("actor") or []]
                if partner.organization in actors:
                    return
    raise PayloadError(
        f"partner {partner.name} needs consent (disclosure: consent-required) and the patient has no "
        f"active Consent permitting {partner.organization}: nothing sent"
    )


def create_remote(exchange: Exchange, partner: Partner, task: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """The conditional create on the partner; (its Task, whether this call created it)."""
    body = remote_task(exchange, task)
    key = identifier_value(body) or ""
    response = exchange.remote(partner.name).request(
        "POST",
        "Task",
        json=body,
        headers={"If-None-Exist": f"identifier={URL_SYSTEM}|{key}", "Prefer": "return=representation"},
        idempotent=True,
    )
    answer = json_body(response) if response.content else None
    if not isinstance(answer, dict) or answer.get("resourceType") != "Task":
        found = exchange.remote(partner.name).search("Task", {"identifier": f"{URL_SYSTEM}|{key}"}).get()
        return found, response.status_code == 201
    return answer, response.status_code == 201


def send(exchange: Exchange, task_id: str, task: dict[str, Any] | None = None) -> Sent:
    """Send our ``Task/<id>`` to the partner that owns it (once), and link it (``task``: as just read)."""
    task = task if task is not None else exchange.local.read("Task", task_id)
    partner = partner_of(exchange, task)
    link = read_link(task, exchange.namespace_base)
    if link is not None:
        return Sent(f"Task/{task_id}", link.partner, link.remote, False, updated_of(task))
    if task.get("status") != "requested":
        raise PayloadError(f"Task/{task_id} is {task.get('status')}: only a requested referral is sent")
    check_disclosure(exchange, partner, task)
    remote, created = create_remote(exchange, partner, task)
    url = f"{exchange.remote_base(partner.name)}/Task/{remote['id']}"
    # a Task that was already there may have moved on: its whole history is replayed by sync
    fresh = Link(
        partner.name,
        url,
        version=version_of(remote) if created else None,
        updated=updated_of(remote) if created else None,
        synced_at=stamp(),
        remote_status=str(remote.get("status")),
        owned=field_digests(remote, OWNED),  # as the partner stored them (its normalisation included)
        pushed=field_digests(remote_task(exchange, task), COPIED),
    )
    for _ in range(5):
        try:
            task = exchange.local.update(
                write_link(task, fresh, exchange.namespace_base), if_match=version_of(task)
            )
            break
        except PreconditionFailed:
            task = exchange.local.read("Task", task_id)
            if read_link(task, exchange.namespace_base) is not None:
                break  # another sender linked it (to the same remote Task: the create was conditional)
    log.info("referral sent", extra={"partner": partner.name, "created": created})
    return Sent(f"Task/{task_id}", partner.name, url, created, updated_of(task))


def owned_since(
    exchange: Exchange, partner: Partner, since: str | None = None, clock: ServerTime | None = None
) -> Iterator[dict[str, Any]]:
    """Our Tasks owned by the partner's Organization, oldest first, changed at or after ``since`` (our
    server's instant: the state's local cursor), keyset-paged (linking a Task moves it): the unsent to
    send, the sent whose requester-owned fields we edited to push."""
    params = [("owner", partner.organization)]
    for page in keyset_pages(exchange.local, "Task", params, since, clock=clock):
        yield from page


def is_sent(exchange: Exchange, task: dict[str, Any]) -> bool:
    return read_link(task, exchange.namespace_base) is not None


def mark_sent(exchange: Exchange, task: dict[str, Any]) -> dict[str, Any]:
    """Our sent Task with the identifier naming its partner (``links.SENT_TO``), written with If-Match
    when a version before it linked the Task without one; raises PreconditionFailed when it moved."""
    link = read_link(task, exchange.namespace_base)
    if link is None or names_partner(task, exchange.namespace_base, link.partner):
        return task
    return exchange.local.update(write_link(task, link, exchange.namespace_base), if_match=version_of(task))
