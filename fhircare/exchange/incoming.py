"""The performer's worklist of incoming referrals: Tasks other organizations created on our server,
with the patient's and requester's names read through their absolute references, from the requester's
server with that partner's credentials. Names are held in memory for one listing, never written down.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from .. import clock
from ..care.task_states import OPEN_STATUSES
from ..errors import FhircareError
from ..views.labels import person_name, resource_label
from ..views.rows import Rows, truncated
from ..views.worklist import WorklistRow, absolute_references, named, row_of
from .context import Exchange
from .links import URL_SYSTEM, identifier_value

log = logging.getLogger("fhircare.exchange")

COLUMNS = ("task", "status", "from", "patient", "requester", "description")

#: what a name is shown as when it is not read: a reference of another shape, or the partner failed
UNKNOWN = "unknown"

#: the only tails read on a partner's server: a person or organization by its FHIR id (no search, no
#: history, no operation, nothing a Task's writer could make the partner refuse or do with our credentials)
_READABLE = re.compile(r"(Patient|Practitioner|PractitionerRole|Organization)/[A-Za-z0-9\-.]{1,64}")


def _partner_for(exchange: Exchange, url: str) -> str | None:
    for name, partner in exchange.partners.partners.items():
        base = partner.base or ""
        if base and url.startswith(base.rstrip("/") + "/"):
            return name
    return None


def _readable(exchange: Exchange, url: str) -> tuple[str, str] | None:
    """(partner, ``Type/id``) when ``url`` is ``<partner base>/<Type>/<id>`` of a readable type."""
    for name, partner in exchange.partners.partners.items():
        base = (partner.base or "").rstrip("/")
        if base and url.startswith(base + "/") and _READABLE.fullmatch(url[len(base) + 1 :]):
            return name, url[len(base) + 1 :]
    return None


def names_of(exchange: Exchange, urls: set[str]) -> dict[str, str]:
    """Absolute URL -> a display name, read in one batch per partner; ``unknown`` for every URL not read:
    one that is not ``<partner base>/<Type>/<id>`` (Patient, Practitioner, PractitionerRole, Organization;
    never asked), one the partner does not have, or one of a batch the partner failed (logged, no PHI)."""
    by_partner: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for url in urls:
        readable = _readable(exchange, url)
        if readable:
            by_partner[readable[0]].append((url, readable[1]))
    found = dict.fromkeys(urls, UNKNOWN)
    for name, wanted in by_partner.items():
        try:
            resources = exchange.remote(name).read_found([ref for _, ref in wanted])
        except FhircareError as exc:
            log.warning(
                "partner names not read",
                extra={"partner": name, "references": len(wanted), "error": type(exc).__name__},
            )
            continue
        for url, ref in wanted:
            resource = resources.get(ref)
            if resource is not None:
                found[url] = person_name(resource) or resource_label(resource) or UNKNOWN
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
