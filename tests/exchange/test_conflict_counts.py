"""Every conflict recorded on a link is counted in the partner's sync state (``sync --once``
"conflicts", ``exchange status``'s partner line, the metrics) until ``exchange resolve`` - also the ones
met while a cancel or our own edit catches up with the partner's versions first. On both partner pairs."""

from __future__ import annotations

from typing import Any

from fhircare.exchange import cancel, partner_states, referrals, resolve, send, sync_once, work
from tests.exchange.conftest import World


def _sync(world: World) -> dict[str, Any]:
    return sync_once(world.exchange, world.partner)["partners"][world.partner]


def _counted(world: World) -> int:
    return int(partner_states(world.exchange)[world.partner]["conflicts"])


def _row(world: World, task_id: str) -> dict[str, Any]:
    return next(r for r in referrals(world.exchange, world.partner) if r["task"] == f"Task/{task_id}")


def test_a_conflict_met_while_our_edit_catches_up_is_counted_until_resolved(world: World) -> None:
    task_id, _ = world.refer()
    send(world.exchange, task_id)
    work(world.theirs, world.remote_of(task_id)["id"], "accepted")
    # we closed the referral here (not through exchange cancel) and edited it: the next cycle pushes the
    # edit, catching up first with the partner's 'accepted' - which clashes with our 'cancelled'
    ours = world.ours.read("Task", task_id)
    edited = {**ours, "status": "cancelled", "priority": "urgent"}
    world.ours.update(edited, if_match=ours["meta"]["versionId"])
    report = _sync(world)
    row = _row(world, task_id)
    assert row["conflict"]["local"]["status"] == "cancelled"
    assert row["conflict"]["remote"]["status"] == "accepted"
    assert report["conflicts"] == 1
    assert _counted(world) == 1
    assert _sync(world)["conflicts"] == 1  # still open on the next cycle
    resolve(world.exchange, task_id, "local")
    assert _row(world, task_id)["conflict"] is None
    assert (_sync(world)["conflicts"], _counted(world)) == (0, 0)


def test_a_conflict_met_while_a_pending_cancel_catches_up_is_counted(world: World) -> None:
    task_id, _ = world.refer()
    send(world.exchange, task_id)
    remote_id = world.remote_of(task_id)["id"]
    work(world.theirs, remote_id, "accepted")
    world.proxy.inject("503", times=1000)
    assert cancel(world.exchange, task_id, "duplicate referral").outcome == "pending"
    # meanwhile the partner's staff completed the Task, then took it back to in-progress: the version
    # 'completed' clashes with our pending cancel when the retry replays the partner's history
    for status in ("completed", "in-progress"):
        current = world.theirs.read("Task", remote_id)
        world.theirs.update({**current, "status": status}, if_match=current["meta"]["versionId"])
    world.proxy.clear()
    report = _sync(world)
    row = _row(world, task_id)
    assert row["conflict"]["remote"]["status"] == "completed"
    assert report["conflicts"] == 1
    assert _counted(world) == 1
    resolve(world.exchange, task_id, "local")
    assert (_sync(world)["conflicts"], _counted(world)) == (0, 0)


def test_a_conflict_met_by_a_cancel_from_the_command_line_is_counted(world: World) -> None:
    """``exchange cancel`` run again on a referral whose cancel is pending: the catch-up clash is
    counted without any sync cycle."""
    task_id, _ = world.refer()
    send(world.exchange, task_id)
    remote_id = world.remote_of(task_id)["id"]
    world.proxy.inject("503", times=1000)
    assert cancel(world.exchange, task_id, "duplicate referral").outcome == "pending"
    world.proxy.clear()
    for status in ("rejected", "requested"):
        current = world.theirs.read("Task", remote_id)
        world.theirs.update({**current, "status": status}, if_match=current["meta"]["versionId"])
    done = cancel(world.exchange, task_id, "duplicate referral")
    assert done.outcome == "cancelled" and done.conflict_open
    assert _row(world, task_id)["conflict"]["remote"]["status"] == "rejected"
    assert _counted(world) == 1
    resolve(world.exchange, task_id, "local")
    assert _counted(world) == 0


def test_a_conflict_met_by_a_cancel_the_partner_then_refuses_to_take_is_counted(world: World) -> None:
    """The catch-up recorded a conflict, then the partner went down before taking the cancel: the cancel
    stays pending on our Task as the catch-up left it (no stale write), and the conflict is counted."""
    task_id, _ = world.refer()
    send(world.exchange, task_id)
    remote_id = world.remote_of(task_id)["id"]
    world.proxy.inject("503", times=1000)
    assert cancel(world.exchange, task_id, "duplicate referral").outcome == "pending"
    world.proxy.clear()
    for status in ("completed", "in-progress"):
        current = world.theirs.read("Task", remote_id)
        world.theirs.update({**current, "status": status}, if_match=current["meta"]["versionId"])
    world.proxy.inject("503", method="PUT", times=1000)  # reads answer, the cancel's write does not
    done = cancel(world.exchange, task_id, "duplicate referral")
    assert done.outcome == "pending" and done.conflict_open
    row = _row(world, task_id)
    assert row["conflict"]["remote"]["status"] == "completed" and row["cancel_pending"] is True
    assert world.ours.read("Task", task_id)["status"] == "in-progress"  # the catch-up's, kept
    assert _counted(world) == 1
    world.proxy.clear()
    assert _sync(world)["conflicts"] == 1
    assert world.remote_of(task_id)["status"] == "cancelled"  # the pending cancel went out


def test_a_conflict_met_by_an_edit_the_partner_then_refuses_to_take_is_counted(world: World) -> None:
    task_id, _ = world.refer()
    send(world.exchange, task_id)
    work(world.theirs, world.remote_of(task_id)["id"], "accepted")
    ours = world.ours.read("Task", task_id)
    world.ours.update(
        {**ours, "status": "cancelled", "note": [{"text": "moved"}]}, if_match=ours["meta"]["versionId"]
    )
    world.proxy.inject("503", method="PUT", times=1000)  # the catch-up reads; our edit's write fails
    report = _sync(world)
    assert report["reachable"] is False
    assert _row(world, task_id)["conflict"]["remote"]["status"] == "accepted"
    assert report["conflicts"] == 1
    assert _counted(world) == 1
