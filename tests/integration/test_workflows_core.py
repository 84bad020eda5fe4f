"""refer and task against the embedded server: what lands on the server, how many requests, and races."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fhircare.errors import ConfigurationError, Conflict, IllegalTransition, PayloadError, UnresolvedReference
from fhircare.fhir import FhirClient
from fhircare.settings import Settings
from fhircare.workflows import run
from fhircare.workflows.task_transition import TaskTransition
from tests.support.clock import at, day
from tests.support.servers import versions

FHIRCARE = str(Path(sys.executable).with_name("fhircare"))


@pytest.fixture()
def people(client: FhirClient, uid: str) -> dict[str, str]:
    patient = client.create(
        {
            "resourceType": "Patient",
            "identifier": [{"system": "urn:test:mrn", "value": f"mrn-{uid}"}],
            "name": [{"family": "Silva", "given": ["Ana"]}],
        }
    )
    coordinator = client.create({"resourceType": "Practitioner", "name": [{"family": "Okafor"}]})
    colleague = client.create({"resourceType": "Practitioner", "name": [{"family": "Berg"}]})
    program = client.create({"resourceType": "Organization", "name": "Diabetes education program"})
    plan = client.create(
        {
            "resourceType": "CarePlan",
            "status": "active",
            "intent": "plan",
            "subject": {"reference": f"Patient/{patient['id']}"},
        }
    )
    return {
        "patient": f"Patient/{patient['id']}",
        "mrn": f"urn:test:mrn|mrn-{uid}",
        "coordinator": f"Practitioner/{coordinator['id']}",
        "colleague": f"Practitioner/{colleague['id']}",
        "program": f"Organization/{program['id']}",
        "plan": f"CarePlan/{plan['id']}",
    }


def referral(people: dict[str, str], **extra: object) -> dict[str, object]:
    return {
        "patient": people["patient"],
        "service": "diabetes-education",
        "performer": people["program"],
        "requester": people["coordinator"],
        "reason": "diabetes",
        "priority": "urgent",
        "due": day(17),
        **extra,
    }


def test_refer_writes_service_request_task_and_provenance_in_one_transaction(
    client, people, server_requests, uid, reference_batch
):
    result = run("refer", referral(people, request_id=f"ref-{uid}"), client)

    # one transaction (the server resolved the references inside it), after a check batch on a
    # server that does not resolve conditional references
    assert server_requests() == 1 + reference_batch
    sr_ref, task_ref, prov_ref = result.written
    assert (
        sr_ref.startswith("ServiceRequest/")
        and task_ref.startswith("Task/")
        and prov_ref.startswith("Provenance/")
    )
    tasks = list(client.search("Task", {"focus": sr_ref}))
    assert [f"Task/{t['id']}" for t in tasks] == [task_ref]
    task = tasks[0]
    assert task["status"] == "requested" and task["intent"] == "order"
    assert task["for"]["reference"] == people["patient"]
    assert task["owner"]["reference"] == people["program"]
    assert task["code"]["coding"][0] == {
        "system": "http://hl7.org/fhir/CodeSystem/task-code",
        "code": "fulfill",
        "display": "Fulfill the focal request",
    }
    assert task["restriction"]["period"]["end"] == at(17, "23:59:59")
    request = client.read_reference(sr_ref)
    assert request["code"]["coding"][0]["system"] == "http://snomed.info/sct"
    assert request["subject"]["reference"] == people["patient"]
    provenance = client.read_reference(prov_ref)
    assert sorted(t["reference"] for t in provenance["target"]) == sorted([sr_ref, task_ref])
    assert provenance["agent"][0]["who"]["reference"] == people["coordinator"]


def test_stored_references_are_literal_after_the_server_resolved_them(client, people, uid):
    result = run("refer", referral(people, request_id=f"lit-{uid}"), client)
    request = client.read_reference(result.written[0])
    assert request["subject"]["reference"] == people["patient"]
    assert request["requester"]["reference"] == people["coordinator"]
    provenance = client.read_reference(result.written[-1])
    assert provenance["agent"][0]["who"]["reference"] == people["coordinator"]


@pytest.mark.parametrize(("mode", "requests"), [("transaction", 1), ("batch", 2), ("off", 1)])
def test_reference_check_modes_cost(
    client, people, server_requests, uid, mode, requests, resolves, fhir_server
):
    """transaction: resolved by the server inside the one transaction; batch: searched first, for
    servers without conditional references; off: for servers that enforce referential integrity.
    Asking for transaction mode on a server that would store ``Type?_id=`` verbatim is refused."""
    settings = Settings.from_env({"FHIRCARE_VERIFY_REFERENCES": mode})
    if mode == "transaction" and not resolves:
        counts = fhir_server.resource_counts()
        with pytest.raises(ConfigurationError, match="without resolving them"):
            run("refer", referral(people, request_id=f"{mode}-{uid}"), client, settings=settings)
        assert server_requests() == 0 and fhir_server.resource_counts() == counts
        return
    result = run("refer", referral(people, request_id=f"{mode}-{uid}"), client, settings=settings)
    assert server_requests() == requests
    assert [r.split("/")[0] for r in result.written] == ["ServiceRequest", "Task", "Provenance"]


@pytest.mark.parametrize("mode", ["transaction", "batch"])
@pytest.mark.parametrize("field", ["patient", "performer", "requester"])
def test_a_reference_to_nothing_is_refused_with_its_path_and_nothing_written(
    client, people, server_requests, uid, fhir_server, field, mode, resolves
):
    rtype = {"patient": "Patient", "performer": "Organization", "requester": "Practitioner"}[field]
    payload = referral(people, request_id=f"dangling-{mode}-{uid}")
    payload[field] = f"{rtype}/no-such-{uid}"
    counts = fhir_server.resource_counts()
    mode = mode if resolves else "auto"  # 'auto' picks batch on a server without conditional references
    settings = Settings.from_env({"FHIRCARE_VERIFY_REFERENCES": mode})
    with pytest.raises(UnresolvedReference) as refused:
        run("refer", payload, client, settings=settings)
    assert [(i.expression, i.diagnostics) for i in refused.value.issues] == [
        ((f"$.{field}",), f"{rtype}/no-such-{uid} does not exist on the server")
    ]
    # transaction: the refused transaction, then one batch to name the field; batch: the check only
    assert server_requests() == (2 if mode == "transaction" else 1)
    assert fhir_server.resource_counts() == counts


def test_in_batch_mode_references_seen_once_are_not_checked_again(client, people, server_requests, uid):
    settings = Settings.from_env({"FHIRCARE_VERIFY_REFERENCES": "batch"})
    run("refer", referral(people, request_id=f"first-{uid}"), client, settings=settings)
    assert server_requests() == 2  # check + transaction
    run("refer", referral(people, request_id=f"second-{uid}"), client, settings=settings)
    assert server_requests() == 3  # the same patient, program and coordinator: transaction only
    client.delete(*people["program"].split("/"))  # a delete through the client forgets the reference
    with pytest.raises(UnresolvedReference, match="name nothing"):
        run("refer", referral(people, request_id=f"third-{uid}"), client, settings=settings)
    assert server_requests() == 5  # the delete, then the check that found the program gone


def test_refer_again_with_the_same_request_id_writes_nothing(
    client, people, server_requests, uid, fhir_server
):
    payload = referral(people, request_id=f"again-{uid}")
    first = run("refer", payload, client)
    counts = fhir_server.resource_counts()
    second = run("refer", payload, client)

    assert second.written == first.written
    assert second.repeated and not second.created
    assert fhir_server.resource_counts() == counts


def test_refer_into_a_care_plan_adds_the_activity_with_if_match(client, people, server_requests, uid):
    result = run("refer", referral(people, request_id=f"plan-{uid}", care_plan=people["plan"]), client)

    assert server_requests() == 2  # one batch read of the plan (and the reference checks), one transaction
    plan = client.read_reference(people["plan"])
    assert versions(client, people["plan"]) == 2
    assert [a["reference"]["reference"] for a in plan["activity"]] == [result.written[0]]
    again = run("refer", referral(people, request_id=f"plan-{uid}", care_plan=people["plan"]), client)
    assert again.repeated and again.written == result.written
    assert len(client.read_reference(people["plan"])["activity"]) == 1


def test_conditional_patient_reference_is_resolved_with_one_extra_request(client, people, server_requests):
    result = run("refer", referral(people, patient=f"Patient?identifier={people['mrn']}"), client)

    assert server_requests() == 2
    task = client.read_reference(result.written[1])
    assert task["for"]["reference"] == people["patient"]


def test_conditional_reference_matching_nothing_is_refused_before_writing(client, people, fhir_server):
    counts = fhir_server.resource_counts()
    with pytest.raises(UnresolvedReference) as caught:
        run("refer", referral(people, patient="Patient?identifier=urn:test:mrn|nobody"), client)
    assert "$.patient" in str(caught.value)
    assert fhir_server.resource_counts() == counts


@pytest.mark.parametrize(
    ("field", "value", "path"),
    [
        ("priority", "whenever", "$.priority"),
        ("patient", "Patient/1?_id=2", "$.patient"),
        ("patient", "http://evil.example/fhir/Patient/1", "$.patient"),
        ("performer", "../Organization/1", "$.performer"),
        ("due", "next tuesday", "$.due"),
        ("service", "no-such-service", "$.service"),
    ],
)
def test_bad_referral_payload_names_the_field_and_writes_nothing(
    client, people, fhir_server, server_requests, field, value, path
):
    counts = fhir_server.resource_counts()
    with pytest.raises(PayloadError) as caught:
        run("refer", referral(people, **{field: value}), client)
    assert any(path in issue.expression for issue in caught.value.issues)
    assert server_requests() == 0
    assert fhir_server.resource_counts() == counts


def test_task_walks_the_state_machine_and_the_referral_follows(client, people):
    result = run("refer", referral(people), client)
    sr_ref, task_ref = result.written[0], result.written[1]
    for status in ("accepted", "in-progress", "completed"):
        run("task", {"task": task_ref, "to": status, "actor": people["coordinator"]}, client)
        assert client.read_reference(task_ref)["status"] == status

    assert client.read_reference(sr_ref)["status"] == "completed"
    assert client.read_reference(task_ref)["executionPeriod"]["end"]


def test_rejected_referral_task_revokes_its_service_request(client, people):
    result = run("refer", referral(people), client)
    run("task", {"task": result.written[1], "to": "rejected", "reason": "Program full"}, client)

    assert client.read_reference(result.written[1])["statusReason"]["text"] == "Program full"
    assert client.read_reference(result.written[0])["status"] == "revoked"


def test_illegal_transition_is_refused_before_any_write(client, people, server_requests, include_batch):
    result = run("refer", referral(people), client)
    before = server_requests()
    with pytest.raises(IllegalTransition):
        run("task", {"task": result.written[1], "to": "completed"}, client)  # requested -> completed

    assert server_requests() - before == 1 + include_batch  # the read only (and its focus, without _include)
    assert client.read_reference(result.written[1])["status"] == "requested"
    assert versions(client, result.written[1]) == 1


def test_reassigning_a_task_changes_its_owner(client, people):
    result = run("refer", referral(people), client)
    run("task", {"task": result.written[1], "owner": people["colleague"]}, client)

    assert client.read_reference(result.written[1])["owner"]["reference"] == people["colleague"]


def test_reassigning_to_nobody_is_refused_and_the_task_keeps_its_version(client, people, uid):
    """The new owner sits in an If-Match PUT; the server resolves it there like in a create."""
    task = run("refer", referral(people), client).written[1]
    with pytest.raises(UnresolvedReference) as refused:
        run("task", {"task": task, "owner": f"Practitioner/gone-{uid}"}, client)
    assert refused.value.issues[0].expression == ("$.owner",)
    assert versions(client, task) == 1
    assert client.read_reference(task)["owner"]["reference"] == people["program"]


def test_a_colleague_changing_the_task_meanwhile_is_reported_as_a_conflict(client, people, monkeypatch):
    result = run("refer", referral(people), client)
    task_ref = result.written[1]
    original = TaskTransition.updates

    def colleague_acts_first(self, state, created):
        stale = original(self, state, created)
        theirs = client.read_reference(task_ref)
        theirs["owner"] = {"reference": people["colleague"]}
        client.update(theirs)
        return stale

    monkeypatch.setattr(TaskTransition, "updates", colleague_acts_first)
    with pytest.raises(Conflict):
        run("task", {"task": task_ref, "to": "accepted"}, client)

    task = client.read_reference(task_ref)
    assert task["owner"]["reference"] == people["colleague"]  # their change is kept
    assert task["status"] == "requested"  # ours was not written over it


def test_cli_run_prints_the_written_references(fhir_server, client, people):
    answer = subprocess.run(
        [FHIRCARE, "--base", fhir_server.base_url, "run", "refer", "-"],
        input=json.dumps(referral(people)),
        capture_output=True,
        text=True,
        check=True,
    )
    printed = json.loads(answer.stdout)
    assert printed["workflow"] == "refer" and printed["request_id"]
    assert [r.split("/")[0] for r in printed["written"]] == ["ServiceRequest", "Task", "Provenance"]
    assert client.read_reference(printed["written"][1])["focus"]["reference"] == printed["written"][0]


def test_cli_refuses_an_invalid_payload_with_exit_code_2_and_every_path(fhir_server, people):
    bad = referral(people, priority="whenever", due="soon")
    answer = subprocess.run(
        [FHIRCARE, "--base", fhir_server.base_url, "run", "refer", "-"],
        input=json.dumps(bad),
        capture_output=True,
        text=True,
    )
    assert answer.returncode == 2
    assert "$.priority" in answer.stderr and "$.due" in answer.stderr


def test_cli_unknown_workflow_lists_the_known_ones(fhir_server):
    answer = subprocess.run(
        [FHIRCARE, "--base", fhir_server.base_url, "run", "nope", "-"],
        input="{}",
        capture_output=True,
        text=True,
    )
    assert answer.returncode == 2
    assert "refer" in answer.stderr and "task" in answer.stderr


def test_the_same_payload_without_request_id_is_not_written_twice(client, people, fhir_server):
    first = run("refer", referral(people, note="first try"), client)
    counts = fhir_server.resource_counts()
    second = run("refer", referral(people, note="first try"), client)

    assert first.request_id.startswith("auto-") and second.request_id == first.request_id
    assert second.written == first.written and second.repeated
    assert fhir_server.resource_counts() == counts
    third = run("refer", referral(people, note="a second, different referral"), client)
    assert third.written[0] != first.written[0]


def test_an_unknown_reference_check_mode_is_a_configuration_error(client):
    from fhircare.errors import ConfigurationError
    from fhircare.workflows import get_workflow

    settings = Settings.from_env({"FHIRCARE_VERIFY_REFERENCES": "sometimes"})
    with pytest.raises(ConfigurationError, match="transaction, batch, off"):
        get_workflow("refer", client, settings)
