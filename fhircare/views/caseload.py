"""Per coordinator: patients, open and overdue tasks, referrals opened and closed in a period, median
days to close. One paged Task search (with the coordinators included), aggregated as it streams; or,
with ``bulk``, one Bulk Data ``$export`` of Tasks and coordinators read line by line (same figures).

A coordinator is a person: a Task owned (or a referral requested) by one of their PractitionerRoles
counts on the row of the role's practitioner, named by the person's name. A role with no practitioner
keeps its own row, named by its code and organization; an Organization or CareTeam that owns Tasks
(a program's queue, a team's) has its own row, named by its name. Whatever the coordinators' resources
the search did not include (or the export did not hold) is read in at most two batches: the owners,
then the people and organizations their roles point to."""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from typing import Any

from .. import clock
from ..fhir import FhirClient
from ..fhir.bulk import Listener, open_export
from .labels import concept_text, person_name, reference_of
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
#: who has a caseload row, in the order of the rows: people (and their roles) first, then teams, then
#: organizations
KINDS = ("Practitioner", "PractitionerRole", "CareTeam", "Organization")
COORDINATORS = tuple(f"{kind}/" for kind in KINDS)


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

    def merge(self, other: _Tally) -> None:
        self.patients |= other.patients
        self.open_tasks += other.open_tasks
        self.overdue += other.overdue
        self.opened += other.opened
        self.closed += other.closed
        self.days_to_close += other.days_to_close


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
    """One row per coordinator: a Practitioner (with the Tasks of their PractitionerRoles), a role with
    no practitioner, a CareTeam or an Organization that owns Tasks or requested referrals; a list whose
    ``truncated`` says whether paging stopped before the end."""
    today = today or clock.today()
    since = since or today - timedelta(days=30)
    until = until or today
    tallies: dict[str, _Tally] = defaultdict(_Tally)
    known: dict[str, dict[str, Any]] = {}  # Type/id -> the coordinators' resources seen on the way
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
                _keep(resource, known)
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
                _keep(resource, known)
            for task in page.matches:
                _count(task, tallies, since, until, today)
        truncated = search.truncated
    known.update(_read_missing(client, tallies, known))
    folded: dict[str, _Tally] = defaultdict(_Tally)
    for who, tally in tallies.items():
        folded[_person_of(who, known)].merge(tally)
    rows = [
        CaseloadRow(
            coordinator=who,
            name=_label(who, known),
            patients=len(tally.patients),
            open_tasks=tally.open_tasks,
            overdue_tasks=tally.overdue,
            referrals_opened=tally.opened,
            referrals_closed=tally.closed,
            median_days_to_close=round(statistics.median(tally.days_to_close), 1)
            if tally.days_to_close
            else None,
        )
        for who, tally in folded.items()
    ]
    rows.sort(key=lambda r: (KINDS.index(r.coordinator.split("/")[0]), r.name.casefold(), r.coordinator))
    return Rows(rows, truncated)


def _keep(resource: dict[str, Any], known: dict[str, dict[str, Any]]) -> None:
    if resource.get("resourceType") in KINDS and resource.get("id"):
        known[f"{resource['resourceType']}/{resource['id']}"] = resource


def _literal(reference: str | None, kind: str) -> str | None:
    """``reference`` when it is a relative literal reference to a ``kind`` (``Type/id``), else None."""
    if reference and reference.startswith(f"{kind}/") and reference.count("/") == 1:
        return reference
    return None


def _read_missing(
    client: FhirClient, tallies: dict[str, _Tally], known: dict[str, dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """What the rows need that the search did not ``_include`` (some servers ignore it) or the export
    did not hold: the owners and requesters in one batch, then their roles' practitioners (or, for a
    role without one, its organization) in another. No request when nothing is missing."""
    found: dict[str, dict[str, Any]] = {}
    missing = sorted(who for who in tallies if who not in known and who.count("/") == 1)
    found.update(client.read_found(missing))
    wanted = set()
    for who in tallies:
        role = found.get(who) or known.get(who)
        if not role or role.get("resourceType") != "PractitionerRole":
            continue
        practitioner = _literal(reference_of(role.get("practitioner")), "Practitioner")
        wanted.add(practitioner or _literal(reference_of(role.get("organization")), "Organization"))
    found.update(client.read_found(sorted(w for w in wanted if w and w not in known and w not in found)))
    return found


def _person_of(who: str, known: dict[str, dict[str, Any]]) -> str:
    """The row a coordinator's figures go on: a role's practitioner, when it names one; else itself."""
    role = known.get(who)
    if role and role.get("resourceType") == "PractitionerRole":
        return _literal(reference_of(role.get("practitioner")), "Practitioner") or who
    return who


def _label(who: str, known: dict[str, dict[str, Any]]) -> str:
    """A row's name: a person's HumanName; a role's code at its organization; a team's or an
    organization's name; the reference itself when there is nothing better (or nothing was found)."""
    resource = known.get(who)
    if resource is None:
        return who
    kind = resource.get("resourceType")
    if kind == "Practitioner":
        return person_name(resource)
    if kind == "PractitionerRole":
        role = concept_text(resource.get("code"))
        organization = known.get(_literal(reference_of(resource.get("organization")), "Organization") or "")
        where = str((organization or {}).get("name") or "")
        return f"{role} at {where}" if role and where else role or where or who
    return str(resource.get("name") or who)


def _count(task: dict[str, Any], tallies: dict[str, _Tally], since: date, until: date, today: date) -> None:
    owner = reference_of(task.get("owner")) or ""
    requester = reference_of(task.get("requester")) or ""
    patient = reference_of(task.get("for"))
    status = task.get("status")
    if owner.startswith(COORDINATORS):
        tally = tallies[owner]
        if patient:
            tally.patients.add(patient)
        if status in OPEN_STATUSES:
            tally.open_tasks += 1
            due = _day(due_of(task))
            if due is not None and due < today:
                tally.overdue += 1
    if requester.startswith(COORDINATORS) and is_referral(task):
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
