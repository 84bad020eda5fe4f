"""My open tasks, overdue first, then by priority and due date, with patient and focus.

Built from ``Task`` searches with ``_include`` of patient and focus, paged lazily: for N tasks,
ceil(N / page size) requests, never one per task. Servers without ``_include`` get one batch of
reads per page instead.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import date
from typing import Any

from .. import clock
from ..care.task_states import sent_to_partner
from ..fhir import FhirClient
from .labels import concept_text, person_name, reference_of, resource_label
from .related import related_resources
from .rows import Rows, drain

OPEN_STATUSES = ("draft", "requested", "received", "accepted", "ready", "in-progress", "on-hold")
PRIORITY_RANK = {"stat": 0, "asap": 1, "urgent": 2, "routine": 3}
COLUMNS = (
    "task",
    "patient_name",
    "what",
    "focus",
    "due",
    "status",
    "priority",
    "age_days",
    "overdue",
    "patient",
)


@dataclass(frozen=True)
class WorklistRow:
    task: str
    patient: str | None
    patient_name: str
    what: str
    focus: str
    focus_ref: str | None
    due: str | None
    status: str
    priority: str
    age_days: int | None
    overdue: bool
    owner: str | None
    requester: str | None = None
    requester_name: str = ""
    sent: bool = False  # sent to a partner organization: its status comes from the partner, by sync

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def sort_key(self) -> tuple[int, int, str, str]:
        return (0 if self.overdue else 1, PRIORITY_RANK.get(self.priority, 4), self.due or "9999", self.task)


def due_of(task: dict[str, Any]) -> str | None:
    """The due date: restriction.period.end (Gravity SDOH shape), else executionPeriod.end."""
    for holder in ((task.get("restriction") or {}).get("period"), task.get("executionPeriod")):
        if isinstance(holder, dict) and holder.get("end"):
            return str(holder["end"])
    return None


def row_of(task: dict[str, Any], related: dict[str, dict[str, Any]], today: date) -> WorklistRow:
    patient_ref = reference_of(task.get("for"))
    requester_ref = reference_of(task.get("requester"))
    based_on = [reference_of(b) for b in task.get("basedOn") or []]
    focus_ref = reference_of(task.get("focus")) or next((b for b in based_on if b), None)
    due = due_of(task)
    authored = str(task.get("authoredOn") or "")[:10]
    age = (today - date.fromisoformat(authored)).days if len(authored) == 10 else None
    return WorklistRow(
        task=f"Task/{task.get('id')}",
        patient=patient_ref,
        patient_name=person_name(related.get(patient_ref or "")) if patient_ref else "",
        what=str(task.get("description") or concept_text(task.get("code")) or "task"),
        focus=resource_label(related.get(focus_ref or "")) if focus_ref else "",
        focus_ref=focus_ref,
        due=due[:10] if due else None,
        status=str(task.get("status", "")),
        priority=str(task.get("priority") or "routine"),
        age_days=age,
        overdue=bool(due and due[:10] < today.isoformat()),
        owner=reference_of(task.get("owner")),
        requester=requester_ref,
        requester_name=resource_label(related.get(requester_ref or "")) if requester_ref else "",
        sent=sent_to_partner(task),
    )


def absolute_references(rows: Sequence[WorklistRow]) -> set[str]:
    """The patients and requesters rows name by absolute URL (Tasks another organization created here)."""
    refs = {ref for row in rows for ref in (row.patient, row.requester) if ref}
    return {ref for ref in refs if ref.startswith(("http://", "https://"))}


def named(rows: Sequence[WorklistRow], names: dict[str, str]) -> list[WorklistRow]:
    """Rows with the names of their absolutely referenced patient and requester (``names``: URL -> name,
    read where those references point), instead of a blank."""
    return [
        replace(
            row,
            patient_name=row.patient_name or names.get(row.patient or "", ""),
            requester_name=row.requester_name or names.get(row.requester or "", ""),
        )
        for row in rows
    ]


def task_query(
    owners: Sequence[str] = (),
    statuses: Sequence[str] = OPEN_STATUSES,
    patient: str | None = None,
    page_size: int = 100,
    include: bool = True,
    paging: Sequence[tuple[str, str]] | None = None,
) -> list[tuple[str, str]]:
    """The worklist's Task search; ``paging`` (``_count`` and friends) replaces ``page_size``."""
    params = [("status", ",".join(statuses)), *(paging or [("_count", str(page_size))])]
    if owners:
        params.append(("owner", ",".join(owners)))
    if patient:
        params.append(("patient", patient))
    if include:
        params += [("_include", "Task:patient"), ("_include", "Task:focus"), ("_include", "Task:based-on")]
    return params


def _related_refs(task: dict[str, Any]) -> list[str | None]:
    return [
        reference_of(task.get("for")),
        reference_of(task.get("focus")),
        *(reference_of(b) for b in task.get("basedOn") or []),
    ]


def stream_worklist(
    client: FhirClient,
    owners: Sequence[str] = (),
    statuses: Sequence[str] = OPEN_STATUSES,
    patient: str | None = None,
    due_before: str | None = None,
    page_size: int | None = None,
    today: date | None = None,
    use_include: bool | None = None,
) -> Generator[WorklistRow, None, bool]:
    """Rows in the server's order, one page in memory at a time; returns (``StopIteration.value``)
    whether the search stopped before its end (``SearchSet.truncated``).

    Without ``page_size`` pages are as large as the server allows (every row is read anyway; the
    round trips, not the page, cost most), with ``_total=none`` where next links work. No
    ``_elements``: a row reads most of a Task, and subsetting cost the embedded server more than
    it saved (benchmarks/paging.py)."""
    today = today or clock.today()
    if use_include is None:
        use_include = client.include_works("Task", "Task:focus")
    paging = client.paging.params(page_size)
    search = client.search("Task", task_query(owners, statuses, patient, include=use_include, paging=paging))
    for page in search.pages():
        wanted = (ref for task in page.matches for ref in _related_refs(task)[:2])
        related = related_resources(client, page, wanted, use_include)
        for task in page.matches:
            row = row_of(task, related, today)
            if due_before and (row.due is None or row.due >= due_before):
                continue
            yield row
    return search.truncated


def worklist(client: FhirClient, **options: Any) -> list[WorklistRow]:
    """All matching rows, overdue first, then priority (stat > asap > urgent > routine), then due date;
    a :class:`~fhircare.views.rows.Rows` whose ``truncated`` says whether paging stopped before the end."""
    rows = drain(stream_worklist(client, **options))
    return Rows(sorted(rows, key=WorklistRow.sort_key), rows.truncated)
