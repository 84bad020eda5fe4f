"""A server that applies a transaction entry by entry (Medplum for a project without the
transaction-bundles feature, modelled by the router's per-project modes: the bearer token names the
project) leaves nothing dangling: references are checked before writing, what it applied of a failed
run is undone (updates put back with If-Match, creates deleted), the error names the cause and the
next step, and what is learned is kept per identity, so one base's atomic and non-atomic projects
are told apart."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from fhircare.errors import (
    PartialWrite,
    ServerValidationError,
    UnresolvedReference,
    UnresolvedStoredReference,
)
from fhircare.fhir import FhirClient
from fhircare.fhir.auth import BearerAuth
from fhircare.fhir.behaviour import BehaviourStore
from fhircare.workflows import run
from fhircare.workflows.plan import Planner
from tests.servers.medplum import MedplumServer
from tests.support.cases import basics, referral_payload
from tests.support.servers import versions

ATOMIC, BATCH = "project-atomic", "project-batch"
WATCHED = ("ServiceRequest", "Task", "Provenance", "Basic")


@pytest.fixture(scope="module")
def projects():
    """One Medplum base serving two projects: one with transaction bundles, one without."""
    with MedplumServer(projects={ATOMIC: "atomic", BATCH: "batch"}) as server:
        yield server


def _client(server: Any, token: str, store: BehaviourStore | None = None) -> FhirClient:
    return FhirClient(server.base_url, auth=BearerAuth(token), behaviour_store=store or BehaviourStore(None))


def _state(server: Any, client: FhirClient, plan: str) -> dict[str, Any]:
    """What a user would compare: the plan's content and versions, and how many of each type exist."""
    counts = server.resource_counts()
    content = {k: v for k, v in client.read_reference(plan).items() if k != "meta"}
    return {
        "plan": content,
        "plan_versions": versions(client, plan),
        "counts": {t: counts.get(t, 0) for t in WATCHED},
    }


def _refer_with_missing_performer(server: Any, client: FhirClient, uid: str) -> tuple[Any, Any, Any]:
    b = basics(client, uid)
    before = _state(server, client, b["plan"])
    payload = referral_payload(b, uid, care_plan=b["plan"], performer=f"Organization/missing-{uid}")
    with pytest.raises(UnresolvedReference) as refused:
        run("refer", payload, client)
    return refused.value, before, _state(server, client, b["plan"])


@pytest.mark.parametrize("known", [False, True], ids=["atomicity-unknown", "known-non-atomic"])
def test_a_refer_with_a_missing_performer_leaves_a_non_atomic_project_as_it_was(projects, uid, known):
    with _client(projects, BATCH) as client:
        if known:
            client.learn(atomic_transactions=False)
        error, before, after = _refer_with_missing_performer(projects, client, uid)
    assert after == before  # the plan's content and versions, and every count
    assert error.exit_code == 2 and "nothing was written" in str(error)
    assert [i.expression for i in error.issues] == [("$.performer",)]


def test_a_refer_with_a_missing_performer_leaves_an_atomic_server_as_it_was(fhir_server, client, uid):
    """The same end state on the embedded server and on Medplum's default (atomic) project."""
    error, before, after = _refer_with_missing_performer(fhir_server, client, uid)
    assert after == before
    assert error.exit_code == 2 and [i.expression for i in error.issues] == [("$.performer",)]


def _task_entry_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fault injected after planning (past fhircare's own checks): the Task entry is sent to the
    Patient endpoint, which every server refuses (400, wrong resource type)."""
    original = Planner.plan

    def plan(self, state, new_uuid=None):
        return [
            dataclasses.replace(e, url="Patient") if e.name == "task" else e
            for e in original(self, state, new_uuid)
        ]

    monkeypatch.setattr(Planner, "plan", plan)


def test_an_applied_update_is_put_back_and_creates_deleted_when_a_later_entry_fails(
    projects, monkeypatch, uid
):
    with _client(projects, BATCH) as client:
        b = basics(client, uid)
        before = _state(projects, client, b["plan"])
        _task_entry_refused(monkeypatch)
        with pytest.raises(PartialWrite) as partial:
            run("refer", referral_payload(b, uid, care_plan=b["plan"]), client)
        monkeypatch.undo()
        after = _state(projects, client, b["plan"])
        assert client.behaviour.atomic_transactions is False  # learned from the partial answer
    message = str(partial.value)
    assert partial.value.written == [] and "nothing stayed written" in message
    assert f"{b['plan']} put back to its earlier content" in message
    assert "entry 'task' answered 400" in message and "fails the same way" in message
    assert "same request_id" not in message  # a re-run cannot fix a refused entry
    assert after["plan"] == before["plan"] and after["counts"] == before["counts"]
    assert after["plan_versions"] == before["plan_versions"] + 2  # applied by the run, then put back


def test_the_same_fault_on_an_atomic_server_writes_nothing(fhir_server, client, monkeypatch, uid):
    b = basics(client, uid)
    before = _state(fhir_server, client, b["plan"])
    _task_entry_refused(monkeypatch)
    with pytest.raises(ServerValidationError):  # the server refused the whole transaction
        run("refer", referral_payload(b, uid, care_plan=b["plan"]), client)
    monkeypatch.undo()
    assert _state(fhir_server, client, b["plan"]) == before


def test_a_colleagues_edit_mid_run_is_undone_then_merged_where_atomicity_was_wrongly_learned(
    projects, monkeypatch, uid
):
    """The store says atomic (learned earlier, elsewhere); the server contradicts it: what it applied
    is undone, atomic=false is learned for this identity, and the merge retry completes the run."""
    with _client(projects, BATCH) as client:
        client.learn(atomic_transactions=True)
        b = basics(client, uid)
        counts = projects.resource_counts()
        payload = referral_payload(b, uid, care_plan=b["plan"], request_id=f"race-{uid}")
        original, calls = Planner.plan, []

        def plan_then_a_colleague_edits_the_plan(self, state, new_uuid=None):
            planned = original(self, state, new_uuid)
            if not calls:  # after the read, before the write: the If-Match entry will fail
                calls.append(1)
                plan = client.read_reference(b["plan"])
                client.update({**plan, "description": "edited meanwhile"})
            return planned

        monkeypatch.setattr(Planner, "plan", plan_then_a_colleague_edits_the_plan)
        done = run("refer", payload, client)
        monkeypatch.undo()
        assert client.behaviour.atomic_transactions is False
        plan = client.read_reference(b["plan"])
        after = projects.resource_counts()
    assert plan["description"] == "edited meanwhile"  # the colleague's change kept
    assert [a["reference"]["reference"] for a in plan["activity"]] == [done.written[0]]
    for rtype in ("ServiceRequest", "Task", "Provenance"):  # the undone first attempt left nothing
        assert after.get(rtype, 0) == counts.get(rtype, 0) + 1, rtype
    assert versions(client, b["plan"]) == 3  # created, edited, the run


def test_one_base_two_projects_are_learned_apart(projects, tmp_path):
    store = BehaviourStore(tmp_path)
    basics_before = projects.resource_counts().get("Basic", 0)
    with _client(projects, ATOMIC, store) as atomic, _client(projects, BATCH, store) as batch:
        assert atomic.policy.probe_atomicity() is True
        assert batch.policy.probe_atomicity() is False
        assert atomic.policy.key != batch.policy.key
    assert projects.resource_counts().get("Basic", 0) == basics_before  # the probes cleaned up
    kept = (tmp_path / "servers.json").read_text(encoding="utf-8")
    assert ATOMIC not in kept and BATCH not in kept  # digests, never the tokens
    learned = {key: value["atomic_transactions"] for key, value in json.loads(kept).items()}
    assert sorted(learned.values()) == [False, True]
    with _client(projects, BATCH, store) as again:  # a later process: nothing probed again
        assert again.policy.applies_transactions_atomically() is False


def test_a_server_profile_name_keys_what_is_learned(projects, tmp_path):
    store = BehaviourStore(tmp_path)
    with FhirClient(
        projects.base_url, auth=BearerAuth(BATCH), behaviour_store=store, server_profile="team-a"
    ) as a:
        a.learn(atomic_transactions=False)
        assert a.policy.key.endswith(" #profile:team-a")
    with FhirClient(
        projects.base_url, auth=BearerAuth(ATOMIC), behaviour_store=store, server_profile="team-a"
    ) as b:
        assert b.behaviour.atomic_transactions is False  # the same profile, whatever the token
    with _client(projects, ATOMIC, store) as c:
        assert c.behaviour.atomic_transactions is None


@pytest.mark.parametrize("token, verdict", [(ATOMIC, "yes"), (BATCH, "no")])
def test_check_tells_an_atomic_project_from_a_non_atomic_one(projects, monkeypatch, tmp_path, token, verdict):
    from click.testing import CliRunner

    from fhircare.cli.main import cli

    monkeypatch.setenv("FHIRCARE_BEARER_TOKEN", token)
    monkeypatch.setenv("FHIRCARE_CACHE_DIR", str(tmp_path))
    basics_before = projects.resource_counts().get("Basic", 0)
    done = CliRunner().invoke(cli, ["check", projects.base_url])
    assert done.exit_code == 0, done.output
    line = next(line for line in done.output.splitlines() if line.startswith("atomic "))
    assert line.split()[1] == verdict
    assert projects.resource_counts().get("Basic", 0) == basics_before


def test_check_says_an_atomic_server_is_atomic(fhir_server, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from fhircare.cli.main import cli

    monkeypatch.setenv("FHIRCARE_CACHE_DIR", str(tmp_path))
    before = fhir_server.resource_counts().get("Basic", 0)
    done = CliRunner().invoke(cli, ["check", fhir_server.base_url, "--json"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.output)["behaviour"]["atomicTransactions"].startswith("yes")
    assert fhir_server.resource_counts().get("Basic", 0) == before


def test_references_stored_unresolved_where_they_were_taken_to_resolve_are_undone(projects, uid):
    """What was learned is wrong (conditional references resolve here): the server stores
    ``Organization?_id=...`` verbatim; the run is undone, the truth learned, and the same request
    then completes with the references checked first."""
    with _client(projects, ATOMIC) as client:
        client.learn(conditional_references=True)
        b = basics(client, uid)
        before = _state(projects, client, b["plan"])
        payload = referral_payload(b, uid, care_plan=b["plan"], request_id=f"stored-{uid}")
        with pytest.raises(UnresolvedStoredReference) as stored:
            run("refer", payload, client)
        assert "nothing stayed written" in str(stored.value) and stored.value.written == []
        assert client.behaviour.conditional_references is False
        after = _state(projects, client, b["plan"])
        assert after["plan"] == before["plan"] and after["counts"] == before["counts"]
        done = run("refer", payload, client)
        request = client.read_reference(done.written[0])
    assert request["performer"] == [{"reference": b["org"]}]


def test_a_runs_creates_go_before_the_updates_that_point_at_them(projects, uid):
    """On a server that applies entries in order, an update never points at a create not yet made;
    the Provenance, which names them all, goes last."""
    with _client(projects, BATCH) as client:
        client.learn(atomic_transactions=False)
        b = basics(client, uid)
        dry = run("refer", referral_payload(b, uid, care_plan=b["plan"]), client, dry_run=True)
    entries = dry.details["bundle"]["entry"]
    methods = [e["request"]["method"] for e in entries]
    assert methods == ["POST", "POST", "PUT", "POST"]
    assert entries[-1]["resource"]["resourceType"] == "Provenance"
    update = entries[2]["resource"]
    assert update["activity"][-1]["reference"]["reference"] == entries[0]["fullUrl"]
