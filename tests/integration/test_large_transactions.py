"""Realistic payloads larger than a strictly isolated transaction may be on Medplum (8 entries when one is
conditional): still one atomic write, still idempotent, on both servers."""

from __future__ import annotations

from collections import Counter

import pytest

from fhircare.fhir import FhirClient
from fhircare.fhir.transaction import stored_conditional_references
from fhircare.workflows import run
from tests.faults.proxy import FaultProxy
from tests.support.cases import basics
from tests.support.clock import day
from tests.support.servers import versions

NEEDS = ["food-insecurity", "homelessness", "fall-risk", "depression", "diabetes"]
SERVICES = ["home-health-referral", "physiotherapy-referral", "dietitian-referral", "social-worker-referral"]


def big_payloads(client: FhirClient, uid: str) -> dict[str, dict]:
    b = basics(client, uid)
    colleague = client.create({"resourceType": "Practitioner", "name": [{"family": "Colleague"}]})
    pcp = client.create({"resourceType": "Practitioner", "name": [{"family": "Doctor"}]})
    return {
        "enroll": {
            "patient": {
                "identifier": {"system": "urn:test:mrn", "value": f"BIG-{uid}"},
                "name": {"given": ["Rosa"], "family": f"Large{uid}"},
                "birthDate": "1948-03-04",
                "gender": "female",
            },
            "coordinator": b["coordinator"],
            "team": [
                {"member": f"Practitioner/{colleague['id']}"},
                {"member": f"Practitioner/{pcp['id']}"},
                {"member": b["org"]},
            ],
            "family": [
                {
                    "name": {"given": [f"Kin{n}"], "family": "Large"},
                    "relationship": "DAU",
                    "phone": f"555-01{n}0",
                }
                for n in range(4)
            ],
            "request_id": f"enroll-{uid}",
        },
        "assess": {
            "patient": b["patient"],
            "author": b["coordinator"],
            "care_plan": b["plan"],
            "answers": [{"question": "Do you live alone?", "answer": True}],
            "needs": [{"code": need} for need in NEEDS],
            "goals": [{"description": f"Goal {n}", "due": day(34)} for n in range(4)],
            "request_id": f"assess-{uid}",
        },
        "transition": {
            "patient": b["patient"],
            "coordinator": b["coordinator"],
            "discharge_date": day(3),
            "from_plan": b["plan"],
            "receiving_provider": b["org"],
            "services": [{"service": s, "performer": b["org"], "due": day(5)} for s in SERVICES],
            "request_id": f"transition-{uid}",
        },
    }


@pytest.mark.parametrize("workflow", ["enroll", "assess", "transition"])
def test_a_large_run_is_written_once_and_a_repeat_writes_nothing(workflow, client, fhir_server, uid):
    payload = big_payloads(client, uid)[workflow]
    before = fhir_server.resource_counts()
    first = run(workflow, payload, client)
    assert len(first.written) >= 8  # at or past what Medplum takes with conditional entries
    after = fhir_server.resource_counts()
    grown = {t: after.get(t, 0) - before.get(t, 0) for t in after if after.get(t, 0) != before.get(t, 0)}
    assert grown == dict(Counter(r.split("/")[0] for r in first.created))
    for reference in first.written:  # every stored reference is literal and resolves
        assert stored_conditional_references(client.read_reference(reference)) == []

    again = run(workflow, payload, client)
    assert again.repeated and again.written == first.written
    assert fhir_server.resource_counts() == after
    if workflow in ("assess", "transition"):
        plan = payload.get("care_plan") or payload.get("from_plan")
        assert versions(client, plan) == 2  # updated exactly once


def test_a_large_run_whose_answer_is_lost_is_not_written_twice(client, fhir_server, uid, reference_batch):
    payload = big_payloads(client, uid)["transition"]
    path = fhir_server.base_url.split("//", 1)[1].split("/", 1)[1]
    with FaultProxy(fhir_server.base_url) as proxy, FhirClient(fhir_server.base_url) as direct:
        direct.resolves_conditional_references()
        direct.behaviour_store.save(proxy.base_url, direct.behaviour)
        # the read batch passes, the transaction is committed and its answer dropped; the retry finds it
        proxy.inject("drop", method="POST", path="/" + path, times=1, skip=1)
        before = fhir_server.resource_counts()
        with FhirClient(proxy.base_url, timeout=(1.0, 3.0), retries=2, backoff_factor=0.0) as faulty:
            result = run("transition", payload, faulty)
        proxy.wait_idle()
    after = fhir_server.resource_counts()
    created = [
        r
        for r in result.written
        if r.split("/")[0] in ("ServiceRequest", "Task", "Communication", "Provenance")
    ]
    grown = sum(after.values()) - sum(before.values())
    assert grown == len(created) + 1  # + the discharge CarePlan; nothing twice
    assert len([r for r in result.written if r.startswith("ServiceRequest/")]) == len(SERVICES)
