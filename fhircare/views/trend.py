"""Tasks opened and closed per day over the last days (the caseload page's trend): one paged ``Task``
search for Tasks changed in the period, counted by ``authoredOn`` (opened) and, for finished ones, by
``lastModified`` (closed)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from .. import clock
from ..fhir import FhirClient

CLOSED = ("completed", "cancelled", "rejected", "failed")


@dataclass(frozen=True)
class Day:
    day: str
    opened: int
    closed: int


def task_trend(client: FhirClient, days: int = 30, today: date | None = None) -> list[Day]:
    today = today or clock.today()
    first = today - timedelta(days=days - 1)
    opened = dict.fromkeys((first + timedelta(days=i)).isoformat() for i in range(days))
    counts = {d: [0, 0] for d in opened}
    params = [("_lastUpdated", f"ge{first.isoformat()}"), ("_count", "500")]
    for task in client.search("Task", params):
        authored = str(task.get("authoredOn") or "")[:10]
        if authored in counts:
            counts[authored][0] += 1
        if task.get("status") in CLOSED:
            closed = str(task.get("lastModified") or (task.get("meta") or {}).get("lastUpdated") or "")[:10]
            if closed in counts:
                counts[closed][1] += 1
    return [Day(d, o, c) for d, (o, c) in counts.items()]
