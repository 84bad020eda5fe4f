"""The demo's caseload is true to time, read back from the server: nothing is due before it was written,
a no-show was booked before it happened and missed after, and a reminder comes before its appointment.

Seeded at today and at a day far ahead (the clock frozen there), on both servers."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from fhircare import clock
from fhircare.demo import Seeder
from fhircare.fhir import FhirClient
from tests.support.clock import today

# 18 patients: every coordinator (i % 3) gets a referral in each of the six states
PATIENTS = 18


def _instant(value: str) -> datetime:
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _demo(client: FhirClient, seed: int, on: date) -> dict[str, list[dict]]:
    with clock.frozen(datetime(on.year, on.month, on.day, 12, 0, tzinfo=UTC)):
        world = Seeder(client, seed, on).seed_all(PATIENTS, lambda _: None)
    patients = world.patients
    found: dict[str, list[dict]] = {"Task": [], "Appointment": [], "CommunicationRequest": []}
    for patient in patients:
        found["Task"] += list(client.search("Task", {"patient": patient}))
        found["Appointment"] += list(client.search("Appointment", {"patient": patient}))
        found["CommunicationRequest"] += list(client.search("CommunicationRequest", {"subject": patient}))
    return found


@pytest.mark.parametrize("offset", [0, 3650], ids=["today", "ten-years-on"])
def test_the_demo_is_true_to_time(client, uid, offset):
    on = today() + timedelta(days=offset)
    found = _demo(client, int(uid[:6], 16), on)

    due_tasks = [t for t in found["Task"] if (t.get("restriction") or {}).get("period", {}).get("end")]
    assert due_tasks, "the demo writes tasks with due dates"
    early = [
        t["id"]
        for t in due_tasks
        if t["restriction"]["period"]["end"][:10] < t["authoredOn"][:10]  # due before it was written
    ]
    assert early == []
    overdue = [t for t in due_tasks if t["restriction"]["period"]["end"][:10] < on.isoformat()]
    assert overdue, "some demo tasks are overdue today, as a real caseload has"
    assert all(t["authoredOn"][:10] <= on.isoformat() for t in found["Task"]), "nothing written in the future"

    noshows = [a for a in found["Appointment"] if a["status"] == "noshow"]
    assert len(noshows) == PATIENTS // 6
    for appointment in noshows:
        start = _instant(appointment["start"])
        assert date.fromisoformat(appointment["created"]) < start.date() < on  # booked ahead, missed since

    appointments = {a["id"]: a for a in found["Appointment"]}
    reminders = [
        c for c in found["CommunicationRequest"] if any(x.get("code") == "reminder" for x in _codes(c))
    ]
    assert reminders, "bookings made ahead of their day get a reminder"
    for reminder in reminders:
        booked = [appointments[r["reference"].split("/")[-1]] for r in _about(reminder)]
        assert booked, "a reminder is about its appointment"
        for appointment in booked:
            assert _instant(reminder["occurrenceDateTime"]) < _instant(appointment["start"])
            assert _instant(reminder["authoredOn"]) <= _instant(reminder["occurrenceDateTime"])


def _codes(resource: dict) -> list[dict]:
    return [c for cc in resource.get("category") or [] for c in cc.get("coding") or []]


def _about(resource: dict) -> list[dict]:
    return [r for r in resource.get("about") or [] if (r.get("reference") or "").startswith("Appointment/")]
