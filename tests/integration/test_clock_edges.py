"""The product reads one clock (``fhircare.clock``): a whole workflow, view and gap rule run at any date
by moving it, and the rules that count days are exact at their edges.

Each test runs its workflows far from today (a year and a decade ahead, and in the past), on both
servers, and asks the views with no ``today=`` at all: only the clock says what day it is."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from fhircare import clock
from fhircare.errors import PayloadError
from fhircare.fhir import FhirClient
from fhircare.views.gaps import find_gaps
from fhircare.views.worklist import worklist
from fhircare.workflows import run
from tests.support.cases import active_coverage, basics, referral_payload
from tests.support.clock import at, day, today

# the days the tests pretend it is: a leap day years ahead, a year ahead, and one in the past
DAYS = [date(2036, 2, 29), today() + timedelta(days=400), today() - timedelta(days=800)]


def nine_am(on: date) -> datetime:
    return datetime(on.year, on.month, on.day, 9, 0, tzinfo=UTC)


def gaps_of(client: FhirClient, patient: str) -> set[str]:
    return {g.rule for g in find_gaps(client, patient=patient)}


@pytest.mark.parametrize("start", DAYS, ids=["2036-leap", "plus-400", "minus-800"])
def test_referral_not_accepted_fires_on_the_sixth_day_not_the_fifth(client, uid, start):
    b = basics(client, uid)
    with clock.frozen(nine_am(start)):
        request, task = run("refer", referral_payload(b, uid, due=day(3, start)), client).written[:2]
    stored = client.read_reference(task)
    assert stored["authoredOn"].startswith(start.isoformat())
    with clock.frozen(nine_am(start + timedelta(days=5))):
        assert "referral-not-accepted" not in gaps_of(client, b["patient"])
    with clock.frozen(nine_am(start + timedelta(days=6))):
        assert "referral-not-accepted" in gaps_of(client, b["patient"])
        run("task", {"task": task, "to": "accepted", "actor": b["coordinator"]}, client)
        assert "referral-not-accepted" not in gaps_of(client, b["patient"])
    assert request.startswith("ServiceRequest/")


@pytest.mark.parametrize("start", DAYS[:2], ids=["2036-leap", "plus-400"])
def test_a_task_is_overdue_the_day_after_its_due_date_and_the_worklist_says_so(client, uid, start):
    b = basics(client, uid)
    with clock.frozen(nine_am(start)):
        request = run("refer", referral_payload(b, uid, due=day(10, start)), client).written[0]
        follow_up = run(
            "follow-up",
            {
                "patient": b["patient"],
                "about": request,
                "owner": b["coordinator"],
                "due": day(3, start),
                "note": "Call back",
            },
            client,
        ).written
    task = next(ref for ref in follow_up if ref.startswith("Task/"))
    due_day = start + timedelta(days=3)
    with clock.frozen(nine_am(due_day)):
        assert "overdue-task" not in gaps_of(client, b["patient"])
        rows = [r for r in worklist(client, owners=[b["coordinator"]]) if r.task == task]
        assert [r.overdue for r in rows] == [False]
    with clock.frozen(nine_am(due_day + timedelta(days=1))):
        assert "overdue-task" in gaps_of(client, b["patient"])
        rows = [r for r in worklist(client, owners=[b["coordinator"]]) if r.task == task]
        assert [r.overdue for r in rows] == [True]


def test_prior_auth_without_a_decision_fires_after_five_whole_days(client, uid):
    b = basics(client, uid)
    start = DAYS[1]
    with clock.frozen(nine_am(start)):
        request = run("refer", referral_payload(b, uid, due=day(20, start)), client).written[0]
        run(
            "prior-auth",
            {
                "patient": b["patient"],
                "coverage": active_coverage(client, b),
                "payer": b["payer"],
                "provider": b["coordinator"],
                "service_request": request,
                "service": "diabetes-education",
                "due": day(12, start),
            },
            client,
        )
    for offset, fires in ((5, False), (6, True)):
        with clock.frozen(nine_am(start + timedelta(days=offset))):
            assert ("prior-auth-no-decision" in gaps_of(client, b["patient"])) is fires, offset


def test_a_booking_is_refused_one_minute_after_its_start_and_taken_one_minute_before(client, uid):
    b = basics(client, uid)
    start = nine_am(DAYS[0])
    request = run("refer", referral_payload(b, uid, due=day(30, DAYS[0])), client).written[0]
    booking = {
        "action": "book",
        "patient": b["patient"],
        "referral": request,
        "start": at(0, "09:00", DAYS[0]),
        "minutes": 30,
        "practitioner": b["coordinator"],
    }
    before = [e["id"] for e in client.search("Appointment", {"based-on": request})]
    with clock.frozen(start + timedelta(minutes=1)), pytest.raises(PayloadError) as refused:
        run("schedule", booking, client)
    assert [issue.expression for issue in refused.value.issues] == [("$.start",)]
    assert [e["id"] for e in client.search("Appointment", {"based-on": request})] == before == []
    with clock.frozen(start - timedelta(minutes=1)):
        written = run("schedule", booking, client).written
    appointment = client.read_reference(next(ref for ref in written if ref.startswith("Appointment/")))
    assert appointment["status"] == "booked"
    assert appointment["start"].startswith(DAYS[0].isoformat())


def test_a_transition_follow_up_is_due_seven_days_after_discharge_by_default_and_not_eight(client, uid):
    b = basics(client, uid)
    discharge = DAYS[1]
    payload = {
        "patient": b["patient"],
        "coordinator": b["coordinator"],
        "discharge_date": discharge.isoformat(),
        "from_plan": b["plan"],
        "receiving_provider": b["org"],
    }
    with pytest.raises(PayloadError) as refused:
        run("transition", {**payload, "follow_up_due": day(8, discharge)}, client)
    assert [issue.expression for issue in refused.value.issues] == [("$.follow_up_due",)]
    assert client.read_reference(b["plan"])["status"] == "active"
    with clock.frozen(nine_am(discharge)):
        written = run("transition", payload, client).written
    tasks = [client.read_reference(ref) for ref in written if ref.startswith("Task/")]
    assert [t["restriction"]["period"]["end"][:10] for t in tasks] == [day(7, discharge)]
    assert client.read_reference(b["plan"])["status"] == "completed"
    with clock.frozen(nine_am(discharge + timedelta(days=7))):
        assert "overdue-task" not in gaps_of(client, b["patient"])
    with clock.frozen(nine_am(discharge + timedelta(days=8))):
        assert "overdue-task" in gaps_of(client, b["patient"])
