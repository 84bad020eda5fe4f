"""Per coordinator: patients, open and overdue tasks, referrals opened and closed in a period, median
days to close. One paged Task search (with the coordinators included), aggregated as it streams; or,
with ``bulk``, one Bulk Data ``$export`` of Tasks and coordinators read line by line (same figures)."""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any

from ..fhir import FhirClient
from ..fhir.bulk import Listener, open_export
from .labels import person_name, reference_of
from .rows import Rows
from .worklist import OPEN_STATUSES, due_of

COLUMNS = (
    "coordinator",
    "name",
    "patients",
    "open_tasks",
    "overdue_tasks",
    "referrals_opened",
    "referrals_closed",
    "median_days_to_close",
)
CLOSED = ("completed", "rejected", "cancelled", "failed")
PEOPLE = ("Practitioner/", "PractitionerRole/")


@dataclass
class CaseloadRow:
    coordinator: str
    name: str = ""
    patients: int = 0
    open_tasks: int = 0
    overdue_tasks: int = 0
    referrals_opened: int = 0
    referrals_closed: int = 0
    median_days_to_close: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Tally:
    patients: set[str] = field(default_factory=set)
    open_tasks: int = 0
    overdue: int = 0
    opened: int = 0
    closed: int = 0
    days_to_close: list[float] = field(default_factory=list)


def is_referral(task: dict[str, Any]) -> bool:
    """A referral's fulfilment Task: code fulfill, focus a ServiceRequest."""
    codes = {c.get("code") for c in (task.get("code") or {}).get("coding") or [] if isinstance(c, dict)}
    focus = reference_of(task.get("focus")) or ""
    return "fulfill" in codes and focus.startswith("ServiceRequest/")


def _day(value: Any) -> date | None:
    try:
        return date.fromisoformat(str(value)[:10]) if value else None
    except ValueError:
        return None


def _closed_on(task: dict[str, Any]) -> date | None:
    return (
        _day((task.get("executionPeriod") or {}).get("end"))
        or _day(task.get("lastModified"))
        or _day((task.get("meta") or {}).get("lastUpdated"))
    )


def caseload(
    client: FhirClient,
    since: date | None = None,
    until: date | None = None,
    today: date | None = None,
    page_size: int | None = None,
    bulk: bool = False,
    listener: Listener | None = None,
) -> Rows[CaseloadRow]:
    """One row per coordinator (a Practitioner or PractitionerRole that owns or requested Tasks); a list
    whose ``truncated`` says whether paging stopped before the end."""
    today = today or datetime.now(timezone.utc).date()
    since = since or today - timedelta(days=30)
    until = until or today
    tallies: dict[str, _Tally] = defaultdict(_Tally)
    names: dict[str, str] = {}
    truncated = False
    exported = (
        open_export(client, types=("Task", "Practitioner", "PractitionerRole"), listener=listener)
        if bulk
        else None
    )
    if exported is not None:
        for resource in exported:
            if resource.get("resourceType") == "Task":
                _count(resource, tallies, since, until, today)
            else:
                _name(resource, names)
    else:
        # a counting view: the largest pages the server allows, no total
        params = [
            *client.paging.params(page_size),
            ("_include", "Task:owner"),
            ("_include", "Task:requester"),
        ]
        search = client.search("Task", params)
        for page in search.pages():
            for resource in page.included:
                _name(resource, names)
            for task in page.matches:
                _count(task, tallies, since, until, today)
        truncated = search.truncated
    _read_missing_names(client, [who for who in tallies if who not in names], names)
    rows = []
    for who, tally in sorted(tallies.items()):
        rows.append(
            CaseloadRow(
                coordinator=who,
                name=names.get(who, ""),
                patients=len(tally.patients),
                open_tasks=tally.open_tasks,
                overdue_tasks=tally.overdue,
                referrals_opened=tally.opened,
                referrals_closed=tally.closed,
                median_days_to_close=round(statistics.median(tally.days_to_close), 1)
                if tally.days_to_close
                else None,
            )
        )
    return Rows(rows, truncated)


def _name(resource: dict[str, Any], names: dict[str, str]) -> None:
    if resource.get("resourceType") in ("Practitioner", "PractitionerRole"):
        names[f"{resource['resourceType']}/{resource.get('id')}"] = person_name(resource)


def _read_missing_names(client: FhirClient, missing: list[str], names: dict[str, str]) -> None:
    """Coordinators a server did not ``_include`` (some ignore it): read in one batch."""
    for resource in client.read_found(missing).values():
        _name(resource, names)


def _count(task: dict[str, Any], tallies: dict[str, _Tally], since: date, until: date, today: date) -> None:
    owner = reference_of(task.get("owner")) or ""
    requester = reference_of(task.get("requester")) or ""
    patient = reference_of(task.get("for"))
    status = task.get("status")
    if owner.startswith(PEOPLE):
        tally = tallies[owner]
        if patient:
            tally.patients.add(patient)
        if status in OPEN_STATUSES:
            tally.open_tasks += 1
            due = _day(due_of(task))
            if due is not None and due < today:
                tally.overdue += 1
    if requester.startswith(PEOPLE) and is_referral(task):
        tally = tallies[requester]
        if patient:
            tally.patients.add(patient)
        authored = _day(task.get("authoredOn"))
        if authored is not None and since <= authored <= until:
            tally.opened += 1
        closed = _closed_on(task) if status in CLOSED else None
        if closed is not None and since <= closed <= until:
            tally.closed += 1
            if authored is not None:
                tally.days_to_close.append((closed - authored).days)
