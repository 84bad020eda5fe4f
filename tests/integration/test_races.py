"""Colleagues at the same time: claims, plan edits and double submissions never lose or duplicate work."""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from fhircare.errors import Conflict
from fhircare.fhir import FhirClient
from fhircare.workflows import run
from tests.support.clock import day
from tests.support.servers import versions

FHIRCARE = str(Path(sys.executable).with_name("fhircare"))
WORKERS = 8


def _setup(client: FhirClient, uid: str, tasks: int) -> tuple[str, list[str], list[str]]:
    patient = (
        f"Patient/{client.create({'resourceType': 'Patient', 'name': [{'family': f'Race{uid}'}]})['id']}"
    )
    coordinators = [
        f"Practitioner/{client.create({'resourceType': 'Practitioner', 'name': [{'family': f'C{i}'}]})['id']}"
        for i in range(WORKERS)
    ]
    bundle = {
        "entry": [
            {
                "resource": {
                    "resourceType": "Task",
                    "status": "requested",
                    "intent": "order",
                    "description": f"unowned {uid} {n}",
                    "for": {"reference": patient},
                },
                "request": {"method": "POST", "url": "Task"},
            }
            for n in range(tasks)
        ]
    }
    answer = client.transaction(bundle)
    refs = [
        "/".join(e["response"]["location"].split("/_history")[0].split("/")[-2:]) for e in answer["entry"]
    ]
    return patient, coordinators, refs


def _claim_all(base_url: str, me: str, tasks: list[str]) -> tuple[list[str], int]:
    won, lost = [], 0
    with FhirClient(base_url) as client:
        for task in tasks:
            try:
                run("task", {"task": task, "owner": me, "claim": True, "to": "accepted", "actor": me}, client)
                won.append(task)
            except Conflict:
                lost += 1
    return won, lost


def test_eight_threads_claiming_the_same_50_tasks_claim_each_exactly_once(client, fhir_server, uid):
    _, coordinators, tasks = _setup(client, uid, 50)
    with ThreadPoolExecutor(WORKERS) as pool:
        results = list(pool.map(lambda me: _claim_all(fhir_server.base_url, me, tasks), coordinators))

    won = [t for ws, _ in results for t in ws]
    assert sorted(won) == sorted(tasks)  # every task claimed, none twice
    assert sum(lost for _, lost in results) == WORKERS * 50 - 50  # every loser was told
    for task, winner in ((t, me) for (ws, _), me in zip(results, coordinators) for t in ws):
        stored = client.read_reference(task)
        assert stored["owner"]["reference"] == winner and stored["status"] == "accepted"
        assert versions(client, task) == 2


CLAIMER = """
import json, sys
from fhircare.errors import Conflict
from fhircare.fhir import FhirClient
from fhircare.workflows import run
base, me, tasks = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
won = []
with FhirClient(base) as client:
    for task in tasks:
        try:
            run("task", {"task": task, "owner": me, "claim": True, "actor": me}, client)
            won.append(task)
        except Conflict:
            pass
print(json.dumps(won))
"""


def test_eight_processes_claiming_the_same_tasks_claim_each_exactly_once(client, fhir_server, uid):
    _, coordinators, tasks = _setup(client, uid, 20)
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", CLAIMER, fhir_server.base_url, me, json.dumps(tasks)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for me in coordinators
    ]
    won = [json.loads(p.communicate(timeout=120)[0]) for p in processes]

    assert sorted(t for ws in won for t in ws) == sorted(tasks)
    for ws, me in zip(won, coordinators):
        for task in ws:
            assert client.read_reference(task)["owner"]["reference"] == me


def test_eight_colleagues_adding_to_one_care_plan_lose_no_activity(client, fhir_server, uid):
    patient = f"Patient/{client.create({'resourceType': 'Patient', 'name': [{'family': 'Plan'}]})['id']}"
    plan = client.create(
        {"resourceType": "CarePlan", "status": "active", "intent": "plan", "subject": {"reference": patient}}
    )
    plan_ref = f"CarePlan/{plan['id']}"
    org = f"Organization/{client.create({'resourceType': 'Organization', 'name': 'Org'})['id']}"
    coordinators = [
        f"Practitioner/{client.create({'resourceType': 'Practitioner', 'name': [{'family': f'P{i}'}]})['id']}"
        for i in range(WORKERS)
    ]

    def add(me: str) -> str:
        with FhirClient(fhir_server.base_url) as own:
            payload = {
                "patient": patient,
                "service": "dietitian-referral",
                "performer": org,
                "requester": me,
                "reason": "diabetes",
                "priority": "routine",
                "due": day(32),
                "care_plan": plan_ref,
            }
            return run("refer", payload, own).written[0]

    with ThreadPoolExecutor(WORKERS) as pool:
        requests = list(pool.map(add, coordinators))

    activities = [a["reference"]["reference"] for a in client.read_reference(plan_ref)["activity"]]
    assert sorted(activities) == sorted(requests)
    assert len(set(requests)) == WORKERS


def test_the_same_referral_submitted_twice_at_once_is_written_once(client, fhir_server, uid):
    patient = f"Patient/{client.create({'resourceType': 'Patient', 'name': [{'family': 'Twice'}]})['id']}"
    org = f"Organization/{client.create({'resourceType': 'Organization', 'name': 'Org'})['id']}"
    me = f"Practitioner/{client.create({'resourceType': 'Practitioner', 'name': [{'family': 'Me'}]})['id']}"
    payload = json.dumps(
        {
            "patient": patient,
            "service": "diabetes-education",
            "performer": org,
            "requester": me,
            "reason": "diabetes",
            "priority": "routine",
            "due": day(32),
        }
    )
    processes = [
        subprocess.Popen(
            [FHIRCARE, "--base", fhir_server.base_url, "run", "refer", "-"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [json.loads(p.communicate(payload, timeout=60)[0]) for p in processes]

    assert outputs[0]["written"] == outputs[1]["written"]
    assert len(list(client.search("ServiceRequest", {"patient": patient}))) == 1
    assert len(list(client.search("Task", {"patient": patient}))) == 1
