"""Every workflow on the embedded server, through the library and the CLI, checked with independent searches."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fhircare.errors import IllegalTransition, PayloadError
from fhircare.fhir import FhirClient
from fhircare.workflows import run
from tests.support.cases import CASES, basics, booked_appointment
from tests.support.clock import at, day
from tests.support.servers import versions

FHIRCARE = str(Path(sys.executable).with_name("fhircare"))

# resource types of ``written``, in order (Provenance last)
EXPECTED = {
    "assess": ["QuestionnaireResponse", "Condition", "Goal", "CarePlan", "Provenance"],
    "care-plan": ["Goal", "CarePlan", "Provenance"],
    "coverage-check": ["Coverage", "CoverageEligibilityRequest", "Provenance"],
    "educate": ["DocumentReference", "Communication", "Provenance"],
    "enroll": ["Patient", "RelatedPerson", "CareTeam", "CarePlan", "Provenance"],
    "follow-up": ["Task", "Provenance"],
    "prior-auth": ["Claim", "Task", "Provenance"],
    "refer": ["ServiceRequest", "Task", "Provenance"],
    "refer+care_plan": ["ServiceRequest", "Task", "CarePlan", "Provenance"],
    "schedule": ["Appointment", "CommunicationRequest", "Provenance"],
    # the new appointment and its reminder, the old appointment cancelled and its reminder revoked
    "schedule+reschedule": [
        "Appointment",
        "CommunicationRequest",
        "Appointment",
        "CommunicationRequest",
        "Provenance",
    ],
    "task": ["Task", "Provenance"],
    "transition": ["CarePlan", "ServiceRequest", "Task", "Communication", "CarePlan", "Provenance"],
    "transport": ["ServiceRequest", "Task", "Provenance"],
}


def _types(refs: list[str]) -> list[str]:
    return [r.split("/")[0] for r in refs]


def _read(client: FhirClient, refs: list[str], rtype: str, n: int = 0) -> dict:
    return client.read_reference([r for r in refs if r.startswith(rtype + "/")][n])


def check_links(workflow: str, payload: dict, refs: list[str], client: FhirClient) -> None:
    """The references between what was written, as a user would check them."""
    provenance = _read(client, refs, "Provenance")
    assert sorted(t["reference"] for t in provenance["target"]) == sorted(refs[:-1])
    patient = payload.get("patient") if isinstance(payload.get("patient"), str) else None
    if workflow == "enroll":
        patient_ref = refs[0]
        assert _read(client, refs, "RelatedPerson")["patient"]["reference"] == patient_ref
        team = _read(client, refs, "CareTeam")
        assert team["subject"]["reference"] == patient_ref
        assert {p["member"]["reference"] for p in team["participant"]} == {payload["coordinator"], refs[1]}
        plan = _read(client, refs, "CarePlan")
        assert (
            plan["careTeam"][0]["reference"] == refs[2]
            and plan["category"][0]["coding"][0]["code"] == "assess-plan"
        )
    elif workflow in ("refer", "refer+care_plan", "transport"):
        task = _read(client, refs, "Task")
        assert task["focus"]["reference"] == refs[0] and task["for"]["reference"] == patient
        assert task["status"] == "requested" and task["code"]["coding"][0]["code"] == "fulfill"
        if workflow == "transport":
            ride = _read(client, refs, "ServiceRequest")
            assert ride["supportingInfo"][0]["reference"] == payload["appointment"]
            assert ride["category"][0]["coding"][0]["code"] == "transportation-insecurity"
        if workflow == "refer+care_plan":
            activities = [a["reference"]["reference"] for a in _read(client, refs, "CarePlan")["activity"]]
            assert activities == [refs[0]]
    elif workflow in ("schedule", "schedule+reschedule"):
        if workflow == "schedule+reschedule":  # the old appointment's reminder is revoked, the new one active
            reminders = [client.read_reference(r) for r in refs if r.startswith("CommunicationRequest/")]
            assert [r["status"] for r in reminders] == ["active", "revoked"]
        appointment = _read(client, refs, "Appointment")
        assert appointment["status"] == "booked"
        assert appointment["basedOn"][0]["reference"].startswith("ServiceRequest/")
        assert any(p["actor"]["reference"].startswith("Patient/") for p in appointment["participant"])
        reminder = _read(client, refs, "CommunicationRequest")
        assert reminder["about"][0]["reference"] == refs[0]
        if workflow == "schedule+reschedule":
            assert _read(client, refs, "Appointment", 1)["status"] == "cancelled"
    elif workflow == "coverage-check":
        coverage = _read(client, refs, "Coverage")
        assert (
            coverage["beneficiary"]["reference"] == patient
            and coverage["payor"][0]["reference"] == payload["payor"]
        )
        request = _read(client, refs, "CoverageEligibilityRequest")
        assert request["insurance"][0]["coverage"]["reference"] == refs[0] and request["purpose"] == [
            "validation",
            "benefits",
        ]
    elif workflow == "prior-auth":
        claim = _read(client, refs, "Claim")
        assert (
            claim["use"] == "preauthorization"
            and claim["insurance"][0]["coverage"]["reference"] == payload["coverage"]
        )
        assert claim["referral"]["reference"] == payload["service_request"]
        task = _read(client, refs, "Task")
        assert task["focus"]["reference"] == refs[0] and task["owner"]["reference"] == payload["payer"]
        assert task["code"]["coding"][0]["code"] == "approve"
    elif workflow == "follow-up":
        task = _read(client, refs, "Task")
        assert task["owner"]["reference"] == payload["owner"]
        assert task["basedOn"][0]["reference"] == payload["about"]
        # a follow-up is not a fulfilment (R4 task-code): it is about its focus without being Task?code=fulfill
        assert task["focus"]["reference"] == payload["about"]
        assert [c["code"] for c in task["code"]["coding"]] == ["make-contact"]
        # ending the follow-up does not end the referral it is about
        run("task", {"task": refs[0], "to": "cancelled"}, client)
        assert client.read_reference(payload["about"])["status"] == "active"
        assert task["restriction"]["period"]["end"] == f"{payload['due']}T23:59:59Z"
    elif workflow == "transition":
        plan = client.read_reference(refs[0])
        assert (
            plan["category"][0]["coding"][0]["code"] == "736372004"
            and plan["replaces"][0]["reference"] == payload["from_plan"]
        )
        assert plan["activity"][0]["reference"]["reference"] == refs[1]
        follow_up = _read(client, refs, "Task")
        assert follow_up["restriction"]["period"]["end"] == at(10, "23:59:59")
        assert (
            _read(client, refs, "Communication")["recipient"][0]["reference"] == payload["receiving_provider"]
        )
        assert client.read_reference(payload["from_plan"])["status"] == "completed"
    elif workflow == "educate":
        message = _read(client, refs, "Communication")
        assert [r["reference"] for r in message["recipient"]] == payload["recipients"]
        assert message["payload"][1]["contentReference"]["reference"] == refs[0]
    elif workflow == "assess":
        plan = _read(client, refs, "CarePlan")
        assert plan["addresses"][0]["reference"] == refs[1] and plan["goal"][0]["reference"] == refs[2]
        assert _read(client, refs, "Condition")["category"][0]["coding"][0]["code"] == "health-concern"
    elif workflow == "care-plan":
        plan = _read(client, refs, "CarePlan")
        assert (
            plan["goal"][0]["reference"] == refs[0]
            and plan["activity"][0]["detail"]["description"] == "Walk 20 minutes"
        )
    elif workflow == "task":
        assert _read(client, refs, "Task")["status"] == "accepted"


@pytest.mark.parametrize("workflow", sorted(CASES))
def test_library_run_writes_the_expected_linked_resources_in_reads_plus_one_requests(
    workflow, client, fhir_server, server_requests, uid, reference_batch, include_batch
):
    case = CASES[workflow](client, uid)
    name = workflow.split("+")[0]
    before = server_requests()

    with FhirClient(fhir_server.base_url) as fresh:  # a new session: no reference known yet
        result = run(name, case.payload, fresh)

    # the reads (and reference checks) in one batch when there are any, then one transaction
    # a task run reads its focus in one more batch on a server that ignores _include
    extra = include_batch if name == "task" else 0
    assert server_requests() - before == max(case.reads, reference_batch) + 1 + extra
    assert _types(result.written) == EXPECTED[workflow]
    # the same payload again, before anything it wrote has moved on: a resend, nothing new
    counts = fhir_server.resource_counts()
    again = run(name, case.payload, client)
    assert again.written == result.written and again.repeated
    assert fhir_server.resource_counts() == counts
    check_links(workflow, case.payload, result.written, client)


@pytest.mark.parametrize("workflow", sorted(CASES))
def test_cli_run_writes_the_same_shape(workflow, client, fhir_server, uid):
    case = CASES[workflow](client, uid)
    answer = subprocess.run(
        [FHIRCARE, "--base", fhir_server.base_url, "run", workflow.split("+")[0], "-"],
        input=json.dumps(case.payload),
        capture_output=True,
        text=True,
    )
    assert answer.returncode == 0, answer.stderr
    printed = json.loads(answer.stdout)
    assert _types(printed["written"]) == EXPECTED[workflow]
    check_links(workflow, case.payload, printed["written"], client)


@pytest.mark.parametrize("workflow", sorted(CASES))
def test_payload_missing_a_required_field_is_refused_with_its_path_and_writes_nothing(
    workflow, client, fhir_server, uid
):
    from fhircare.mapping.validate import workflow_schema
    from fhircare.settings import Settings

    case = CASES[workflow](client, uid)
    name = workflow.split("+")[0]
    schema = workflow_schema(Settings().profiles_dir, name)
    # prior-auth's request fields are required only when it is not recording a decision (allOf/else)
    required = (schema.get("required") or schema["allOf"][0]["else"]["required"])[-1]
    broken = {k: v for k, v in case.payload.items() if k != required}
    counts = fhir_server.resource_counts()
    with pytest.raises(PayloadError) as caught:
        run(name, broken, client)
    assert required in str(caught.value)
    assert fhir_server.resource_counts() == counts


def test_transition_refuses_a_follow_up_later_than_seven_days(client, fhir_server, uid):
    case = CASES["transition"](client, uid)
    counts = fhir_server.resource_counts()
    with pytest.raises(PayloadError) as caught:
        run("transition", {**case.payload, "follow_up_due": day(11)}, client)
    assert caught.value.issues[0].expression == ("$.follow_up_due",)
    assert fhir_server.resource_counts() == counts


def test_schedule_noshow_then_arrive_is_an_illegal_transition(client, uid):
    appointment = booked_appointment(client, basics(client, uid), uid)
    run("schedule", {"action": "noshow", "appointment": appointment, "reason": "Did not come"}, client)
    assert client.read_reference(appointment)["status"] == "noshow"
    with pytest.raises(IllegalTransition):
        run("schedule", {"action": "arrive", "appointment": appointment}, client)
    assert versions(client, appointment) == 2


def test_enrolling_a_known_patient_reuses_the_patient(client, fhir_server, uid):
    case = CASES["enroll"](client, uid)
    first = run("enroll", case.payload, client)
    second = run("enroll", {**case.payload, "plan_title": "A second plan"}, client)
    assert second.written[0] == first.written[0]  # same Patient, found by its identifier
    ident = case.payload["patient"]["identifier"]
    assert len(list(client.search("Patient", {"identifier": f"{ident['system']}|{ident['value']}"}))) == 1
    assert len(list(client.search("CarePlan", {"patient": first.written[0]}))) == 2


def test_coverage_check_twice_for_the_same_member_keeps_one_coverage(client, uid):
    case = CASES["coverage-check"](client, uid)
    first = run("coverage-check", case.payload, client)
    second = run("coverage-check", {**case.payload, "date": day(17)}, client)
    assert second.written[0] == first.written[0]
    assert second.written[1] != first.written[1]  # a new eligibility request for the new date
    assert len(list(client.search("Coverage", {"beneficiary": case.payload["patient"]}))) == 1
