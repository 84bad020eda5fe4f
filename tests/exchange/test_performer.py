"""The performer's side: the owner changes only status, statusReason and output; completing writes the
Procedure in the same transaction."""

from __future__ import annotations

import pytest

from fhircare.errors import IllegalTransition, PayloadError, TransientError
from fhircare.exchange import guard_owner_change, send, work
from fhircare.fhir import FhirClient
from tests.exchange.conftest import World


def test_the_guard_refuses_an_owner_change_outside_status_reason_and_output() -> None:
    before = {
        "resourceType": "Task",
        "status": "requested",
        "owner": {"reference": "Organization/a"},
        "priority": "routine",
    }
    guard_owner_change(before, {**before, "status": "accepted", "statusReason": {"text": "ok"}})
    with pytest.raises(PayloadError) as caught:
        guard_owner_change(before, {**before, "owner": {"reference": "Organization/b"}, "priority": "urgent"})
    paths = [i.expression[0] for i in caught.value.issues]
    assert paths == ["$.owner", "$.priority"]


def test_completing_writes_the_procedure_and_the_task_together(world: World) -> None:
    task_id, _ = world.refer()
    send(world.exchange, task_id)
    remote_id = world.remote_of(task_id)["id"]
    work(world.theirs, remote_id, "accepted")
    work(world.theirs, remote_id, "in-progress")
    done = work(world.theirs, remote_id, "completed", outcome="Food delivered weekly")
    task = world.theirs.read("Task", remote_id)
    procedure_ref = task["output"][0]["valueReference"]["reference"]
    assert task["output"][0]["type"]["coding"][0]["code"] == "resulting-activity"
    procedure = world.theirs.read_reference(procedure_ref)
    assert procedure["code"]["text"] == "Food delivered weekly"
    assert procedure["subject"] == task["for"]  # the requester's Patient, by absolute reference
    assert procedure_ref in done["written"]


def test_a_rejection_carries_its_reason(world: World) -> None:
    task_id, _ = world.refer()
    send(world.exchange, task_id)
    remote_id = world.remote_of(task_id)["id"]
    work(world.theirs, remote_id, "rejected", reason="at capacity")
    task = world.theirs.read("Task", remote_id)
    assert (task["status"], task["statusReason"]["text"]) == ("rejected", "at capacity")


def test_a_lost_answer_on_completion_leaves_one_procedure(world: World) -> None:
    task_id, _ = world.refer()
    send(world.exchange, task_id)
    remote_id = world.remote_of(task_id)["id"]
    work(world.theirs, remote_id, "accepted")
    work(world.theirs, remote_id, "in-progress")
    world.proxy.inject("drop", method="POST", path=world.path(""), times=1)
    with FhirClient(world.proxy.base_url, retries=1, backoff_factor=0.01) as through:
        with pytest.raises(TransientError):
            work(through, remote_id, "completed", outcome="Done once")
        with pytest.raises(IllegalTransition):  # the retry sees the committed completion
            work(through, remote_id, "completed", outcome="Done once")
    task = world.theirs.read("Task", remote_id)
    assert task["status"] == "completed" and len(task["output"]) == 1


def test_the_owner_sets_only_owner_statuses(world: World) -> None:
    task_id, _ = world.refer()
    send(world.exchange, task_id)
    with pytest.raises(PayloadError, match="not a status the owner sets"):
        work(world.theirs, world.remote_of(task_id)["id"], "entered-in-error")


def test_incoming_referrals_show_names_read_from_the_requesters_server(world: World) -> None:
    from fhircare.exchange import Exchange, parse_partners
    from fhircare.exchange.incoming import incoming

    task_id, _ = world.refer()
    send(world.exchange, task_id)
    remote_id = world.remote_of(task_id)["id"]
    document = {
        "self": {"base": world.theirs.base_url, "organization": "Organization/food-bank"},
        "partners": {"clinic": {"organization": "Organization/clinic", "base": world.ours.base_url}},
    }
    performer = Exchange(world.exchange.settings, parse_partners(document, "performer.yaml"), world.theirs)
    try:
        rows = {row["task"]: row for row in incoming(performer)}
    finally:
        performer.close()
    row = rows[f"Task/{remote_id}"]
    family = world.ours.read_reference(world.patient)["name"][0]["family"]
    assert family in row["patient"]
    assert "Coord" in row["requester"]
    assert row["from"] == "clinic" and row["status"] == "requested"
