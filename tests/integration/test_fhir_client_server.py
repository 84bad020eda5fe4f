"""The FHIR client against the embedded server: CRUD, transactions, conditional writes, paging, races."""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from fhircare.errors import NotFound, PreconditionFailed, ServerValidationError
from fhircare.fhir import FhirClient
from tests.support.clock import at, day
from tests.support.servers import versions

P = {"reference": "Patient/crud-patient"}
RESOURCES = {
    "Patient": {"resourceType": "Patient", "name": [{"family": "Crud"}], "gender": "female"},
    "Practitioner": {"resourceType": "Practitioner", "name": [{"family": "Doc"}]},
    "PractitionerRole": {
        "resourceType": "PractitionerRole",
        "active": True,
        "practitioner": {"reference": "Practitioner/x"},
    },
    "Organization": {"resourceType": "Organization", "name": "Clinic"},
    "RelatedPerson": {"resourceType": "RelatedPerson", "patient": P, "name": [{"family": "Kin"}]},
    "CareTeam": {"resourceType": "CareTeam", "status": "active", "subject": P},
    "CarePlan": {"resourceType": "CarePlan", "status": "active", "intent": "plan", "subject": P},
    "Goal": {
        "resourceType": "Goal",
        "lifecycleStatus": "active",
        "description": {"text": "Walk"},
        "subject": P,
    },
    "Task": {"resourceType": "Task", "status": "requested", "intent": "order", "for": P},
    "ServiceRequest": {"resourceType": "ServiceRequest", "status": "active", "intent": "order", "subject": P},
    "Appointment": {
        "resourceType": "Appointment",
        "status": "booked",
        "participant": [{"actor": P, "status": "accepted"}],
    },
    "Coverage": {
        "resourceType": "Coverage",
        "status": "active",
        "beneficiary": P,
        "payor": [{"reference": "Organization/x"}],
    },
    "CoverageEligibilityRequest": {
        "resourceType": "CoverageEligibilityRequest",
        "status": "active",
        "purpose": ["validation"],
        "patient": P,
        "created": day(-331),
        "insurer": {"reference": "Organization/x"},
    },
    "Communication": {"resourceType": "Communication", "status": "completed", "subject": P},
    "Provenance": {
        "resourceType": "Provenance",
        "target": [P],
        "recorded": at(-331, "00:00"),
        "agent": [{"who": {"reference": "Practitioner/x"}}],
    },
}
CHANGE = {
    "Patient": ("gender", "male"),
    "Practitioner": ("active", False),
    "PractitionerRole": ("active", False),
    "Organization": ("name", "Clinic 2"),
    "RelatedPerson": ("active", False),
    "CareTeam": ("status", "inactive"),
    "CarePlan": ("status", "completed"),
    "Goal": ("lifecycleStatus", "completed"),
    "Task": ("status", "accepted"),
    "ServiceRequest": ("status", "completed"),
    "Appointment": ("status", "fulfilled"),
    "Coverage": ("status", "cancelled"),
    "CoverageEligibilityRequest": ("status", "cancelled"),
    "Communication": ("status", "stopped"),
    "Provenance": ("recorded", at(-299, "00:00")),
}


@pytest.mark.parametrize("rtype", sorted(RESOURCES))
def test_create_read_update_vread_delete(client, rtype):
    created = client.create(RESOURCES[rtype])
    assert created["id"] and created["meta"]["versionId"]
    read = client.read(rtype, created["id"])
    assert {k: v for k, v in read.items() if k not in ("id", "meta")} == RESOURCES[rtype]
    key, value = CHANGE[rtype]
    updated = client.update({**read, key: value}, if_match=read["meta"]["versionId"])
    assert updated["meta"]["versionId"] != read["meta"]["versionId"]
    assert client.read(rtype, created["id"])[key] == value
    assert versions(client, f"{rtype}/{created['id']}") == 2
    first = created["meta"]["versionId"]
    assert client.vread(rtype, created["id"], first).get(key) == RESOURCES[rtype].get(key)
    client.delete(rtype, created["id"])
    with pytest.raises(NotFound):  # 410 Gone where the server tracks deletes (SEKMET), else 404 (Medplum)
        client.read(rtype, created["id"])


def test_transaction_with_urn_uuid_references_comes_back_with_real_ids(client, uid):
    bundle = {
        "entry": [
            {
                "fullUrl": "urn:uuid:11111111-1111-4111-8111-111111111111",
                "resource": {"resourceType": "Patient", "name": [{"family": uid}]},
                "request": {"method": "POST", "url": "Patient"},
            },
            {
                "fullUrl": "urn:uuid:22222222-2222-4222-8222-222222222222",
                "resource": {
                    "resourceType": "ServiceRequest",
                    "status": "active",
                    "intent": "order",
                    "subject": {"reference": "urn:uuid:11111111-1111-4111-8111-111111111111"},
                },
                "request": {"method": "POST", "url": "ServiceRequest"},
            },
            {
                "resource": {
                    "resourceType": "Task",
                    "status": "requested",
                    "intent": "order",
                    "focus": {"reference": "urn:uuid:22222222-2222-4222-8222-222222222222"},
                    "for": {"reference": "urn:uuid:11111111-1111-4111-8111-111111111111"},
                },
                "request": {"method": "POST", "url": "Task"},
            },
        ]
    }
    answer = client.transaction(bundle)
    refs = [
        "/".join(e["response"]["location"].split("/_history")[0].split("/")[-2:]) for e in answer["entry"]
    ]
    task = client.read_reference(refs[2])
    assert task["focus"]["reference"] == refs[1] and task["for"]["reference"] == refs[0]
    assert client.read_reference(refs[1])["subject"]["reference"] == refs[0]


def test_a_failing_entry_rolls_the_whole_transaction_back(client, fhir_server, uid):
    plan = client.create({"resourceType": "CarePlan", "status": "active", "intent": "plan", "subject": P})
    counts = fhir_server.resource_counts()
    bundle = {
        "entry": [
            {
                "resource": {"resourceType": "Patient", "name": [{"family": uid}]},
                "request": {"method": "POST", "url": "Patient"},
            },
            {
                "resource": {**plan, "status": "completed"},
                "request": {"method": "PUT", "url": f"CarePlan/{plan['id']}", "ifMatch": 'W/"9"'},
            },
        ]
    }
    with pytest.raises(PreconditionFailed):
        client.transaction(bundle)
    assert fhir_server.resource_counts() == counts
    assert client.read("CarePlan", plan["id"])["status"] == "active"
    assert list(client.search("Patient", {"name": uid})) == []


def test_invalid_content_in_a_transaction_is_refused_with_the_servers_reason(client, fhir_server):
    counts = fhir_server.resource_counts()
    bad = {
        "entry": [
            {
                "resource": {"resourceType": "Task", "status": "requested"},
                "request": {"url": "Task"},  # no method: every server refuses it
            }
        ]
    }
    with pytest.raises(ServerValidationError) as caught:
        client.transaction(bad)
    assert caught.value.issues
    assert fhir_server.resource_counts() == counts


def test_conditional_create_twice_makes_one_resource(client, uid):
    body = {"resourceType": "Patient", "identifier": [{"system": "urn:test", "value": uid}]}
    first = client.create(body, if_none_exist=f"identifier=urn:test|{uid}")
    second = client.create(body, if_none_exist=f"identifier=urn:test|{uid}")
    assert first["id"] == second["id"]
    assert len(list(client.search("Patient", {"identifier": f"urn:test|{uid}"}))) == 1


def test_update_with_a_stale_version_is_a_precondition_failure(client):
    task = client.create(RESOURCES["Task"])
    first = task["meta"]["versionId"]
    client.update({**task, "status": "accepted"}, if_match=first)
    with pytest.raises(PreconditionFailed):
        client.update({**task, "status": "rejected"}, if_match=first)
    assert client.read("Task", task["id"])["status"] == "accepted"


def test_250_tasks_paged_by_50_take_exactly_5_gets(client, server_requests, uid):
    entries = [
        {
            "resource": {
                "resourceType": "Task",
                "status": "requested",
                "intent": "order",
                "description": uid,
                "owner": {"reference": f"Organization/page-{uid}"},
            },
            "request": {"method": "POST", "url": "Task"},
        }
        for _ in range(250)
    ]
    client.transaction({"entry": entries})
    before = server_requests()
    ids = [t["id"] for t in client.search("Task", {"owner": f"Organization/page-{uid}", "_count": 50})]
    assert len(ids) == len(set(ids)) == 250
    assert server_requests() - before == 5


def test_8_threads_creating_the_same_conditional_resource_make_exactly_one(fhir_server, client, uid):
    def create(_: int) -> str:
        with FhirClient(fhir_server.base_url) as own:
            body = {"resourceType": "Patient", "identifier": [{"system": "urn:race", "value": uid}]}
            return own.create(body, if_none_exist=f"identifier=urn:race|{uid}")["id"]

    with ThreadPoolExecutor(8) as pool:
        ids = set(pool.map(create, range(8)))
    assert len(ids) == 1
    assert len(list(client.search("Patient", {"identifier": f"urn:race|{uid}"}))) == 1


CREATOR = """
import sys
from fhircare.fhir import FhirClient
base, value = sys.argv[1], sys.argv[2]
body = {"resourceType": "Patient", "identifier": [{"system": "urn:race-process", "value": value}]}
print(FhirClient(base).create(body, if_none_exist=f"identifier=urn:race-process|{value}")["id"])
"""


def test_8_processes_creating_the_same_conditional_resource_make_exactly_one(fhir_server, client, uid):
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", CREATOR, fhir_server.base_url, uid], stdout=subprocess.PIPE, text=True
        )
        for _ in range(8)
    ]
    ids = {p.communicate(timeout=60)[0].strip() for p in processes}
    assert len(ids) == 1
    assert len(list(client.search("Patient", {"identifier": f"urn:race-process|{uid}"}))) == 1
    assert json.dumps(sorted(ids))
