"""undo-complete and what a completion wrote besides the Task: the outcomes it wrote are withdrawn
(entered-in-error, If-Match, in the undo's transaction), what it only named stands (the note says so), a
payer's own decision refuses the undo, a referral it did not close stays completed, and the window of a
completion made outside fhircare runs on the server's clock. On both servers."""

from __future__ import annotations

from datetime import timedelta

import pytest

from fhircare import clock
from fhircare.errors import IllegalTransition
from fhircare.settings import Settings
from fhircare.workflows import run
from tests.integration.test_prior_auth_decision import _pas_response, _requested
from tests.integration.test_undo_complete import state, undo_provenances, world  # noqa: F401 - fixture
from tests.support.cases import make, prior_auth_case
from tests.support.clock import at
from tests.support.servers import versions

# -- what the completion wrote, what it only named, and what it did not close --------------------------


def _decided_by_phone(client, uid: str) -> tuple[str, str, str]:
    """(Task, the ClaimResponse the recorded phone decision wrote, the actor) of an approved request."""
    case = prior_auth_case(client, uid)
    task = next(r for r in run("prior-auth", case.payload, client).written if r.startswith("Task/"))
    manual = {
        "decision": "approved",
        "number": f"PA-{uid}",
        "said_by": "Dana at the payer",
        "channel": "phone",
    }
    actor = case.payload["provider"]
    run("prior-auth", {"action": "record-decision", "task": task, "manual": manual, "actor": actor}, client)
    done = client.read_reference(task)
    (response,) = [o["valueReference"]["reference"] for o in done["output"] if "valueReference" in o]
    return task, response, actor


def test_undoing_a_recorded_decision_marks_the_claim_response_it_wrote_entered_in_error(
    client, uid, server_requests
):
    task, response, actor = _decided_by_phone(client, uid)
    before = server_requests()
    result = run("undo-complete", {"task": task, "actor": actor}, client)
    # the read batch, one batch for what the completion wrote (the ClaimResponse; the Claim too where
    # _include is ignored), one transaction
    assert server_requests() - before == 3 == result.requests
    assert client.read_reference(task)["status"] == "ready"
    assert client.read_reference(response)["status"] == "entered-in-error"  # withdrawn, not deleted
    (provenance,) = undo_provenances(client, task)
    assert {t["reference"] for t in provenance["target"]} == {task, response}
    assert sorted(result.updated) == sorted([task, response])
    assert f"Withdrawn (entered in error): {response}." in client.read_reference(task)["note"][-1]["text"]


def test_a_decision_the_payer_wrote_is_not_undone_here(client, uid):
    payload, claim, task = _requested(client, uid)
    response = make(client, _pas_response(payload["patient"], claim, "A1", number=f"OK-{uid}"))
    record = {
        "action": "record-decision",
        "task": task,
        "claim_response": response,
        "actor": payload["provider"],
    }
    run("prior-auth", record, client)
    count = versions(client, task)
    with pytest.raises(IllegalTransition) as refused:
        run("undo-complete", {"task": task, "actor": payload["provider"]}, client)
    assert "the payer's decision stands" in refused.value.message and response in refused.value.message
    assert client.read_reference(task)["status"] == "completed" and versions(client, task) == count
    assert client.read_reference(response)["status"] == "active"
    assert undo_provenances(client, task) == []


def test_an_outcome_the_completion_only_named_stands_and_the_note_says_so(client, world, uid):  # noqa: F811 - the imported fixture
    done = make(
        client,
        {
            "resourceType": "Procedure",
            "status": "completed",
            "code": {"text": f"First class {uid}"},
            "subject": {"reference": world["patient"]},
        },
    )
    payload = {
        "task": world["task"],
        "to": "completed",
        "actor": world["coordinator"],
        "outcome": {"reference": done},
    }
    run("task", payload, client)
    result = run("undo-complete", {"task": world["task"], "actor": world["coordinator"]}, client)
    assert client.read_reference(done)["status"] == "completed"  # someone else's record: left as it is
    assert done not in result.updated
    note = client.read_reference(world["task"])["note"][-1]["text"]
    assert f"Not written by this completion, so left as they are: {done}." in note
    assert state(client, world)[:2] == ("in-progress", "active")  # the completion closed the referral


def test_a_completion_made_outside_fhircare_leaves_the_referral_completed_and_says_so(client, world, uid):  # noqa: F811 - the imported fixture
    run("task", {"task": world["task"], "to": "completed", "actor": world["coordinator"]}, client)
    run("undo-complete", {"task": world["task"], "actor": world["coordinator"]}, client)
    run("task", {"task": world["task"], "to": "completed", "actor": world["coordinator"]}, client)
    # the EHR puts the Task back and completes it again itself: no fhircare run made that completion
    task = client.read_reference(world["task"])
    client.update({**task, "status": "in-progress"})
    client.update({**client.read_reference(world["task"]), "status": "completed"})
    run("undo-complete", {"task": world["task"], "actor": world["coordinator"]}, client)
    assert state(client, world)[:2] == ("in-progress", "completed")
    note = client.read_reference(world["task"])["note"][-1]["text"]
    assert f"{world['request']} stays completed: this completion did not close it" in note


def test_the_window_of_a_completion_made_outside_fhircare_runs_on_the_servers_clock(client, world, uid):  # noqa: F811 - the imported fixture
    # the EHR completes the Task and stamps lastModified a month ahead: the server's clock counts
    task = client.read_reference(world["task"])
    client.update({**task, "status": "completed", "lastModified": at(30, "10:00")})
    with clock.frozen(clock.now() + timedelta(minutes=Settings().undo_window_minutes + 1)):
        with pytest.raises(IllegalTransition) as refused:
            run("undo-complete", {"task": world["task"], "actor": world["coordinator"]}, client)
    assert "undo window closed" in refused.value.message
    assert client.read_reference(world["task"])["status"] == "completed"
