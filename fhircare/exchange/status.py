"""What the coordinator sees: every sent referral, both sides' status, conflicts, reachability; and
``resolve``, the only way out of a conflict."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ..errors import Forbidden, PayloadError
from .apply import REFERRAL_STATUSES, provenance_from, write_version
from .cancel import provenance
from .conflicts import close_conflict_task
from .context import Exchange, instant, stamp
from .copies import Refused, copied_outputs
from .cursor import load_cursor, read_cursors, update_pending
from .links import Link, read_link, sent_to_search, updated_of, version_of, write_link


def referrals(exchange: Exchange, only: str | None = None) -> list[dict[str, Any]]:
    """One row per sent referral (``exchange status --json``)."""
    rows = []
    names = [only] if only else sorted(exchange.partners.partners)
    try:  # one search, for every partner
        states = read_cursors(exchange, set(names))
    except Forbidden:  # a session whose token may not read them (a patient's): every owned Task is paged
        states = {}
    for name in names:
        partner = exchange.partners.get(name)
        state = states.get(name)
        if state is not None and state.indexed:  # only our Tasks sent to it
            params = {"identifier": sent_to_search(exchange.namespace_base, name), "_sort": "_lastUpdated"}
        else:  # no cycle has yet given older links their identifier: everything the partner owns
            params = {"owner": partner.organization, "_sort": "_lastUpdated"}
        for task in exchange.local.search("Task", params):
            link = read_link(task, exchange.namespace_base)
            if link is None:
                continue
            rows.append(
                {
                    "task": f"Task/{task['id']}",
                    "partner": link.partner,
                    "remote": link.remote,
                    "local_status": task.get("status"),
                    "remote_status": link.remote_status,
                    "synced_at": link.synced_at,
                    "conflict": link.conflict.to_json() if link.conflict else None,
                    "cancel_pending": link.cancel_reason is not None,
                    "not_applied": list(link.ignored),
                }
            )
    return rows


def partner_states(exchange: Exchange) -> dict[str, dict[str, Any]]:
    """Per partner: cursor, reachability ("unreachable since T"), open conflicts, pending cancels."""
    out = {}
    for name, partner in sorted(exchange.partners.partners.items()):
        cursor = load_cursor(exchange, name)
        out[name] = {
            "cursor": cursor.value,
            "reachable": cursor.unreachable_since is None,
            "unreachable_since": cursor.unreachable_since,
            "conflicts": len(cursor.conflicts),
            "pending_cancels": len(cursor.pending),
            "last_error": cursor.last_error,
            "last_poll": cursor.polled_at,  # our clock at the last complete poll (kept to within an hour)
            "polling_every": f"{int(partner.poll.total_seconds())}s",
        }
    return out


def render(rows: list[dict[str, Any]], states: dict[str, dict[str, Any]]) -> str:
    lines = []
    for name, state in states.items():
        where = "reachable" if state["reachable"] else f"unreachable since {state['unreachable_since']}"
        line = f"{name}: {where}; polling every {state['polling_every']}; cursor {state['cursor']}"
        if state.get("last_poll"):
            line += f"; last complete poll {state['last_poll']}"
        if state["last_error"]:
            line += f"; last answer not applied ({state['last_error']})"
        lines.append(line)
    for row in rows:
        text = f"{row['task']} -> {row['partner']}: ours {row['local_status']}, theirs {row['remote_status']}"
        if row["conflict"]:
            c = row["conflict"]
            text += (
                f"; CONFLICT local {c['local']['status']} (v{c['local']['version']})"
                f" vs remote {c['remote']['status']} (v{c['remote']['version']})"
            )
        if row["cancel_pending"]:
            text += "; cancel pending"
        lines.append(text)
    return "\n".join(lines) or "no referrals sent"


def resolve(exchange: Exchange, task_id: str, take: str) -> dict[str, Any]:
    """End a conflict: ``take`` local (the partner's Task gets our status, If-Match) or remote (ours
    gets theirs, with the outputs copied), with a Provenance. Nothing was lost before this."""
    ours = exchange.local.read("Task", task_id)
    link = read_link(ours, exchange.namespace_base)
    if link is None or link.conflict is None:
        raise PayloadError(f"Task/{task_id} has no open conflict")
    partner = exchange.partners.get(link.partner)
    remote = exchange.remote(partner.name)
    current = remote.read("Task", link.remote.rsplit("/", 1)[1])
    if take == "local":
        body = {**current, "status": ours.get("status")}
        if ours.get("statusReason"):
            body["statusReason"] = ours["statusReason"]
        written = remote.update(body, if_match=version_of(current))
        settled = replace(link, conflict=None, version=version_of(written), updated=updated_of(written))
        settled = replace(settled, remote_status=str(ours.get("status")), synced_at=stamp())
        write_version(
            exchange,
            write_link(ours, settled, exchange.namespace_base),
            [
                provenance(exchange, task_id, "resolve: took local"),
                *close_conflict_task(exchange, task_id, link.conflict),
            ],
        )
    else:
        current = _as_shown(exchange, remote, link, current)
        outputs = copied_outputs(exchange, partner, current, {}, ours)
        if isinstance(outputs, Refused):
            raise PayloadError(f"Task/{task_id}: the partner's version cannot be taken ({outputs.why})")
        updated = {**ours, "status": current.get("status"), "output": outputs}
        if current.get("statusReason"):
            updated["statusReason"] = current["statusReason"]
        if not outputs:
            updated.pop("output")
        settled = replace(link, conflict=None, synced_at=stamp())
        if not link.updated or instant(link.updated) < instant(updated_of(current)):
            settled = replace(  # the versions up to the one taken are settled with it
                settled,
                version=version_of(current),
                updated=updated_of(current),
                remote_status=str(current.get("status")),
            )  # those after it the cycle treats as any others (seen already when the link is past it)
        what = f"{link.remote}/_history/{version_of(current)}"
        entry = {
            "resource": provenance_from(partner, f"Task/{task_id}", what),
            "request": {"method": "POST", "url": "Provenance"},
        }
        closing = close_conflict_task(exchange, task_id, link.conflict)
        write_version(exchange, write_link(updated, settled, exchange.namespace_base), [entry, *closing])
    update_pending(exchange, partner.name, task_id, False, kind="conflict")
    return {
        "task": f"Task/{task_id}",
        "took": take,
        "status": ours.get("status") if take == "local" else current.get("status"),
    }


def _as_shown(exchange: Exchange, remote: Any, link: Link, current: dict[str, Any]) -> dict[str, Any]:
    """The partner's Task as the conflict showed it to the coordinator: the version it recorded (read
    again when the partner moved on since; the cycle treats the later versions as any others), and
    refused unless it is a referral status - what is taken is exactly what was seen."""
    assert link.conflict is not None
    shown = link.conflict.remote_version
    if version_of(current) != shown:
        current = remote.vread("Task", str(current["id"]), shown)
    status = str(current.get("status"))
    if (
        version_of(current) != shown
        or status != link.conflict.remote_status
        or status not in REFERRAL_STATUSES
    ):
        raise PayloadError(
            "the partner's Task no longer holds the version the conflict showed; nothing taken"
        )
    return current
