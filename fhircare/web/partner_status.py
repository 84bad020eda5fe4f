"""What the patient page says of a referral sent to a partner: the partner's status and when it was last
synced ("partner: accepted · synced 10:42 UTC"), "not sent", "unreachable since …" or "conflict".

Read from the exchange link on our Task (``fhircare.exchange.links``) and, for reachability, the
partners' sync state on our server (one search for the partners the page names; nothing is created).
Without partners configured nothing is said."""

from __future__ import annotations

from datetime import datetime

from flask import current_app

from .. import clock
from ..errors import FhircareError
from ..exchange import Exchange
from ..exchange.cursor import Cursor, read_cursors
from ..exchange.links import Link, read_link
from ..views.referrals import Referral
from .api import settings
from .fhir_access import access
from .times import when, zone


def _short(stamp: str | None) -> str:
    """A sync time: the hour and minute when it is today in the console's zone, else the date too."""
    if not stamp:
        return ""
    try:
        moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return stamp
    if moment.tzinfo is None:
        return stamp
    local, today = moment.astimezone(zone()), clock.now().astimezone(zone()).date()
    if local.date() != today:
        return when(stamp)
    return f"{local:%H:%M} {local.tzname() or zone()}"


def link_words(link: Link, cursor: Cursor | None) -> str:
    """One sent referral's state, in the page's words."""
    if link.conflict is not None:
        return (
            f"conflict: the partner says {link.conflict.remote_status}, we say {link.conflict.local_status}"
        )
    if cursor is not None and cursor.unreachable_since:
        return f"unreachable since {when(cursor.unreachable_since)}"
    words = f"partner: {link.remote_status or 'sent'}"
    if link.synced_at:
        words += f" · synced {_short(link.synced_at)}"
    if link.cancel_reason is not None:
        words += " · cancel pending"
    return words


def partner_words(referrals: list[Referral]) -> dict[str, str]:
    """Task reference -> what to say of its partner, for the referrals that go to a partner."""
    holder = current_app.extensions.get("fhircare.exchange")
    partners = getattr(holder, "partners", None)
    if holder is None or partners is None or not referrals:
        return {}
    base = settings().namespaces().base
    links = {r.task: read_link({"extension": list(r.extension)}, base) for r in referrals}
    named = {link.partner for link in links.values() if link is not None}
    client = access().view_client()
    cursors: dict[str, Cursor] = {}
    if named:
        try:
            cursors = read_cursors(Exchange(settings(), partners, client), named)
        except FhircareError as exc:
            if exc.status == 401:
                raise
            cursors = {}  # reachability unknown to this caller (a scope without Basic): not said
    organizations = holder.partner_organizations()
    words: dict[str, str] = {}
    for referral in referrals:
        link = links[referral.task]
        if link is not None:
            words[referral.task] = link_words(link, cursors.get(link.partner))
        elif referral.owner in organizations:
            words[referral.task] = "not sent"
    return words
