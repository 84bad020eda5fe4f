"""The performer's worklist of incoming referrals: Tasks other organizations created on our server,
with the patient's and requester's names read through their absolute references, from the requester's
server with that partner's credentials. Names are held in memory for one listing, never written down.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from .. import clock
from ..care.task_states import OPEN_STATUSES
from ..views.labels import person_name, resource_label
from ..views.rows import Rows, truncated
from ..views.worklist import WorklistRow, absolute_references, named, row_of
from .context import Exchange, PartnerAnswerError, PartnerThrottled, PartnerUnreachable
from .links import URL_SYSTEM, identifier_value

COLUMNS = ("task", "status", "from", "patient", "requester", "description")


def _partner_for(exchange: Exchange, url: str) -> str | None:
    for name, partner in exchange.partners.partners.items():
        base = partner.base or ""
        if base and url.startswith(base.rstrip("/") + "/"):
            return name
    return None


def names_of(exchange: Exchange, urls: set[str]) -> dict[str, str]:
    """Absolute URL -> a display name, read in one batch per partner (unreadable ones left out)."""
    by_partner: dict[str, list[str]] = defaultdict(list)
    for url in urls:
        name = _partner_for(exchange, url)
        if name:
            by_partner[name].append(url)
    found: dict[str, str] = {}
    for name, wanted in by_partner.items():
        client = exchange.remote(name)
        relative = [u[len(client.base_url) + 1 :] for u in wanted]
        try:
            resources = client.read_found(relative)
        except (PartnerUnreachable, PartnerThrottled, PartnerAnswerError):
            continue
        for url, ref in zip(wanted, relative, strict=True):
            resource = resources.get(ref)
            if resource is not None:
                found[url] = person_name(resource) or resource_label(resource)
    return found


def incoming_tasks(exchange: Exchange) -> list[tuple[dict[str, Any], str]]:
    """(Task, the URL of the Task that sent it) for every open referral Task on our server that another
    organization's Task names (its identifier is an absolute URL elsewhere), oldest first.

    The server is asked only for Tasks with an identifier in the RFC 3986 system (``identifier=<system>|``,
    a token search for any value in that system: both the embedded server and Medplum's router support
    it), so our own open Tasks are never fetched; Python only drops those naming one of our own URLs."""
    found = []
    statuses = ",".join(s for s in OPEN_STATUSES if s not in ("draft", "received", "ready"))
    params = [("status", statuses), ("identifier", f"{URL_SYSTEM}|"), ("_sort", "_lastUpdated")]
    for task in exchange.local.search("Task", params):
        origin = identifier_value(task, URL_SYSTEM)
        if origin and exchange.partners.local(origin) is None:
            found.append((task, origin))
    return found


def incoming(exchange: Exchange) -> list[dict[str, Any]]:
    """Open referral Tasks on our server that another organization's Task names (its identifier is an
    absolute URL elsewhere), oldest first."""
    rows, wanted = [], set()
    for task, origin in incoming_tasks(exchange):
        refs = {k: str((task.get(k) or {}).get("reference") or "") for k in ("for", "requester")}
        wanted |= {r for r in refs.values() if r.startswith(("http://", "https://"))}
        rows.append((task, origin, refs))
    names = names_of(exchange, wanted)
    return [
        {
            "task": f"Task/{task['id']}",
            "status": task.get("status"),
            "from": _partner_for(exchange, origin) or origin.split("/Task/")[0],
            "patient": names.get(refs["for"], refs["for"]),
            "requester": names.get(refs["requester"], refs["requester"]),
            "description": task.get("description"),
        }
        for task, origin, refs in rows
    ]


def with_incoming(
    exchange: Exchange,
    rows: list[WorklistRow],
    owners: Sequence[str],
    statuses: Sequence[str],
    patient: str | None = None,
    due_before: str | None = None,
) -> Rows[WorklistRow]:
    """A worklist's rows (``views.worklist``) at an organization that receives referrals: the open
    referral Tasks partners created here, unowned until claimed, added when ``owners`` name our
    Organization (and no patient filter is set), and every absolutely referenced patient and requester
    named by reading it where it lives, with that partner's credentials (one batch per partner; held
    for this listing only). Sorted as the worklist sorts; ``truncated`` kept from ``rows``."""
    listed = list(rows)
    if not patient and owners and exchange.partners.organization in owners:
        seen, today = {row.task for row in rows}, clock.today()
        for task, _ in incoming_tasks(exchange):
            row = row_of(task, {}, today)
            if row.task in seen or row.owner is not None or row.status not in statuses:
                continue
            if due_before and (row.due is None or row.due >= due_before):
                continue
            listed.append(row)
    names = names_of(exchange, absolute_references(listed))
    return Rows(sorted(named(listed, names), key=WorklistRow.sort_key), truncated(rows))
