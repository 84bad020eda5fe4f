"""The built-in gap rules for referrals between organizations (rules/gaps.yaml, issue 21 item 8), each
at its edges under a frozen clock, on both partner pairs."""

from __future__ import annotations

from datetime import datetime, timedelta

from fhircare import clock
from fhircare.exchange import resolve, send, sync_once, work
from fhircare.views.gaps import find_gaps
from tests.exchange.conftest import World
from tests.support.clock import date_at, moment


def _thursday_10() -> datetime:
    """A Thursday at 10:00 UTC, a week or two ahead of today (so nothing is written in the past)."""
    offset = 7 + (3 - date_at().weekday()) % 7
    return moment(offset, "10:00")


def _gaps(world: World, at: datetime) -> set[tuple[str, str]]:
    with clock.frozen(at):
        found = find_gaps(world.ours, patient=world.patient, settings=world.exchange.settings)
    return {(g.rule, g.resource) for g in found}


def _sent(world: World, at: datetime) -> tuple[str, str]:
    """A referral written and sent to the partner at ``at`` (our clock): (Task id, ServiceRequest id)."""
    with clock.frozen(at):
        task_id, request_id = world.refer()
        send(world.exchange, task_id)
    return task_id, request_id


def test_not_acknowledged_counts_business_days_only(world: World) -> None:
    thursday = _thursday_10()
    task_id, _ = _sent(world, thursday)
    gap = ("exchange-not-acknowledged", f"Task/{task_id}")
    monday = thursday + timedelta(days=4)
    # Thursday 10:00 + two business days = Monday 10:00 (the weekend does not count)
    assert gap not in _gaps(world, thursday + timedelta(days=2, hours=13))  # Saturday 23:00
    assert gap not in _gaps(world, monday - timedelta(minutes=1))
    assert gap in _gaps(world, monday + timedelta(minutes=1))
    with clock.frozen(monday + timedelta(hours=1)):
        work(world.theirs, world.remote_of(task_id)["id"], "accepted")
        sync_once(world.exchange, world.partner)
    assert world.ours.read("Task", task_id)["status"] == "accepted"
    assert gap not in _gaps(world, monday + timedelta(hours=2))


def test_rejected_and_not_re_referred_until_a_new_task_is_sent(world: World) -> None:
    thursday = _thursday_10()
    task_id, request_id = _sent(world, thursday)
    gap = ("exchange-rejected-not-re-referred", f"ServiceRequest/{request_id}")
    assert gap not in _gaps(world, thursday + timedelta(hours=1))
    with clock.frozen(thursday + timedelta(hours=2)):
        work(world.theirs, world.remote_of(task_id)["id"], "rejected", reason="at capacity")
        sync_once(world.exchange, world.partner)
    gaps = _gaps(world, thursday + timedelta(hours=3))
    assert gap in gaps
    assert ("exchange-not-acknowledged", f"Task/{task_id}") not in gaps
    # referred again: a new Task for the same request, owned by another organization
    rejected = world.ours.read("Task", task_id)
    again = {k: v for k, v in rejected.items() if k not in ("id", "meta", "extension", "statusReason")}
    again.pop("identifier", None)
    world.ours.create({**again, "status": "requested", "owner": {"reference": world.coordinator}})
    assert gap not in _gaps(world, thursday + timedelta(hours=4))


def test_a_conflict_is_a_gap_until_resolved(world: World) -> None:
    thursday = _thursday_10()
    task_id, _ = _sent(world, thursday)
    gap = ("exchange-conflict", f"Task/{task_id}")
    ours = world.ours.read("Task", task_id)
    world.ours.update({**ours, "status": "cancelled"}, if_match=ours["meta"]["versionId"])
    with clock.frozen(thursday + timedelta(hours=1)):
        work(world.theirs, world.remote_of(task_id)["id"], "accepted")
        sync_once(world.exchange, world.partner)
    assert gap in _gaps(world, thursday + timedelta(hours=2))
    with clock.frozen(thursday + timedelta(hours=3)):
        resolve(world.exchange, task_id, "local")
    assert gap not in _gaps(world, thursday + timedelta(hours=4))


def test_not_synced_for_six_hours_until_the_next_sync(world: World) -> None:
    thursday = _thursday_10()
    task_id, _ = _sent(world, thursday)  # synced-at: Thursday 10:00 (our clock)
    gap = ("exchange-not-synced", f"Task/{task_id}")
    assert gap not in _gaps(world, thursday + timedelta(hours=6))
    assert gap in _gaps(world, thursday + timedelta(hours=6, seconds=1))
    with clock.frozen(thursday + timedelta(hours=7)):
        work(world.theirs, world.remote_of(task_id)["id"], "accepted")
        sync_once(world.exchange, world.partner)
    assert gap not in _gaps(world, thursday + timedelta(hours=8))
    assert gap in _gaps(world, thursday + timedelta(hours=13, seconds=1))
    # a referral no longer open is not waited for
    ours = world.ours.read("Task", task_id)
    world.ours.update({**ours, "status": "completed"}, if_match=ours["meta"]["versionId"])
    assert gap not in _gaps(world, thursday + timedelta(days=2))
