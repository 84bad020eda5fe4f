"""Notifications as hints: a Subscription on the partner that only wakes our sync.

``subscribe`` creates an R4 rest-hook Subscription on the partner whose criteria are our source tag,
pointing at our hook (``sync --listen``) with the partner's secret in its header. A notification carries
no data we trust: the hook wakes that partner's cycle, which polls from the cursor - so a lost,
repeated or reordered notification changes nothing. ``watch`` re-activates a Subscription the partner
turned to ``error``/``off`` (the next cycle's poll catches up on what it missed).
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

from ..errors import ConfigurationError, NotFound, PreconditionFailed
from .context import Exchange
from .cursor import load_cursor, save_once
from .links import version_of
from .partners import Partner
from .send import source_tag

log = logging.getLogger("fhircare.exchange")


def partner_secret(exchange: Exchange, partner: Partner) -> str | None:
    """The secret the partner's notifications carry (``notify_secret_env``), or None."""
    if not partner.notify_secret_env:
        return None
    return dict(exchange.settings.partner_tokens).get(partner.notify_secret_env)


def secret_matches(expected: str | None, authorization: str | None) -> bool:
    """``Authorization: Bearer <secret>`` against the partner's secret, in constant time."""
    if not expected or not authorization or not authorization.startswith("Bearer "):
        return False
    return hmac.compare_digest(authorization[7:].strip().encode(), expected.encode())


BACKPORT = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition"
HEARTBEAT = f"{BACKPORT}/backport-heartbeat-period"


def backport_body(
    exchange: Exchange, partner: Partner, endpoint: str, secret: str, topic: str, heartbeat: int
) -> dict[str, Any]:
    """An R4 Backport (topic-based) Subscription: ``topic`` is the partner's Task topic, filtered to our
    source tag; ``id-only`` content (nothing in a notification is trusted); heartbeats when asked."""
    system, code = source_tag(exchange)
    body: dict[str, Any] = {
        "resourceType": "Subscription",
        "meta": {"profile": [f"{BACKPORT}/backport-subscription"], "tag": [{"system": system, "code": code}]},
        "status": "requested",
        "reason": "fhircare exchange: wake the requester's sync when its referral Tasks change",
        "criteria": topic,
        "_criteria": {
            "extension": [
                {"url": f"{BACKPORT}/backport-filter-criteria", "valueString": f"Task?_tag={system}|{code}"}
            ]
        },
        "channel": {
            "type": "rest-hook",
            "endpoint": endpoint.rstrip("/") + f"/hook/{partner.name}",
            "payload": "application/fhir+json",
            "_payload": {
                "extension": [{"url": f"{BACKPORT}/backport-payload-content", "valueCode": "id-only"}]
            },
            "header": [f"Authorization: Bearer {secret}"],
        },
    }
    if heartbeat:
        body["channel"]["extension"] = [{"url": HEARTBEAT, "valueUnsignedInt": heartbeat}]
    return body


def heartbeat_of(subscription: dict[str, Any]) -> int | None:
    """The backport heartbeat period in seconds, when the Subscription asks for one."""
    for ext in (subscription.get("channel") or {}).get("extension") or []:
        if ext.get("url") == HEARTBEAT and ext.get("valueUnsignedInt"):
            return int(ext["valueUnsignedInt"])
    return None


def subscription_body(exchange: Exchange, partner: Partner, endpoint: str, secret: str) -> dict[str, Any]:
    system, code = source_tag(exchange)
    return {
        "resourceType": "Subscription",
        "meta": {"tag": [{"system": system, "code": code}]},
        "status": "requested",
        "reason": "fhircare exchange: wake the requester's sync when its referral Tasks change",
        "criteria": f"Task?_tag={system}|{code}",
        "channel": {
            "type": "rest-hook",
            "endpoint": endpoint.rstrip("/") + f"/hook/{partner.name}",
            "payload": "application/fhir+json",
            "header": [f"Authorization: Bearer {secret}"],
        },
    }


def subscribe(
    exchange: Exchange, name: str, endpoint: str, topic: str | None = None, heartbeat: int = 0
) -> dict[str, Any]:
    """Create (once) the partner's Subscription to our Tasks - R4 criteria, or the R4 Backport form on
    ``topic`` - and keep its URL in the sync state."""
    partner = exchange.partners.get(name)
    secret = partner_secret(exchange, partner)
    if not secret:
        raise ConfigurationError(f"partner {name}: notify_secret_env names no variable that is set")
    remote = exchange.remote(name)
    cursor = load_cursor(exchange, name)
    if cursor.subscription:
        try:
            current = remote.read("Subscription", cursor.subscription.rsplit("/", 1)[1])
            return {
                "partner": name,
                "subscription": cursor.subscription,
                "status": current.get("status"),
                "created": False,
            }
        except NotFound:
            pass
    system, code = source_tag(exchange)
    body = (
        backport_body(exchange, partner, endpoint, secret, topic, heartbeat)
        if topic
        else subscription_body(exchange, partner, endpoint, secret)
    )
    created = remote.create(body, if_none_exist=f"_tag={system}|{code}")
    url = f"{remote.base_url}/Subscription/{created['id']}"
    for _ in range(10):  # a worker may save the state meanwhile: If-Match, read again, retry
        cursor.subscription = url
        try:
            save_once(exchange, cursor)
            break
        except PreconditionFailed:
            cursor = load_cursor(exchange, name)
    return {"partner": name, "subscription": url, "status": created.get("status"), "created": True}


def watch(
    exchange: Exchange, partner: Partner, subscription: str | None, silent_for: float | None = None
) -> str:
    """The Subscription's status; one in ``error`` or ``off``, or one whose heartbeats stopped (nothing
    heard for ``silent_for`` seconds, over twice its period) is set back to ``requested`` (If-Match); the
    cycle's poll catches up on what was missed. ``polling``: the partner has none, or does not activate
    it (Medplum's router)."""
    if not subscription:
        return "polling"
    remote = exchange.remote(partner.name)
    current = remote.read("Subscription", subscription.rsplit("/", 1)[1])
    status = str(current.get("status"))
    period = heartbeat_of(current)
    if status == "active" and period and silent_for is not None and silent_for > 2 * period:
        status = "silent"
    if status in ("error", "off", "silent"):
        try:
            remote.update({**current, "status": "requested"}, if_match=version_of(current))
            log.warning("partner subscription re-activated", extra={"partner": partner.name, "was": status})
            return "reactivated"
        except PreconditionFailed:
            return status
    return status if status == "active" else "polling"
