"""Opt-in: the workflows and views against a public FHIR R4 sandbox (e.g. HAPI's), never in CI.

    FHIRCARE_LIVE_BASE_URL=https://hapi.fhir.org/baseR4 .venv/bin/python -m pytest -m live tests/live

Each test writes under unique identifiers and deletes what it wrote afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from fhircare.fhir import FhirClient
from fhircare.views.summary import patient_summary
from fhircare.views.worklist import worklist
from fhircare.workflows import run
from tests.support.clock import day

LIVE = os.environ.get("FHIRCARE_LIVE_BASE_URL")
pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(not LIVE, reason="set FHIRCARE_LIVE_BASE_URL to run against a public FHIR sandbox"),
]


@pytest.fixture()
def live() -> Iterator[tuple[FhirClient, list[str]]]:
    written: list[str] = []
    with FhirClient(str(LIVE), timeout=(5, 60), retries=3, backoff_factor=0.5) as client:
        yield client, written
        for reference in reversed(written):  # clean up, newest first (references point backwards)
            rtype, rid = reference.split("/")[:2]
            try:
                client.delete(rtype, rid)
            except Exception:  # noqa: S112 - best effort on a shared sandbox
                continue


def test_enroll_refer_accept_and_read_back_on_a_live_server(live):
    client, written = live
    tag = uuid.uuid4().hex[:10]
    coordinator = client.create({"resourceType": "Practitioner", "name": [{"family": f"Fhircare{tag}"}]})
    program = client.create({"resourceType": "Organization", "name": f"fhircare test program {tag}"})
    written += [f"Practitioner/{coordinator['id']}", f"Organization/{program['id']}"]
    enrolled = run(
        "enroll",
        {
            "request_id": f"live-{tag}-enroll",
            "patient": {
                "identifier": {"system": "urn:fhircare:live-test", "value": tag},
                "name": {"given": ["Test"], "family": f"Fhircare{tag}"},
                "birthDate": "1970-01-01",
                "gender": "unknown",
            },
            "coordinator": f"Practitioner/{coordinator['id']}",
        },
        client,
    )
    written += enrolled.written
    patient = enrolled.written[0]
    referral = run(
        "refer",
        {
            "request_id": f"live-{tag}-refer",
            "patient": f"Patient?identifier=urn:fhircare:live-test|{tag}",
            "service": "diabetes-education",
            "performer": f"Organization/{program['id']}",
            "requester": f"Practitioner/{coordinator['id']}",
            "reason": "diabetes",
            "priority": "routine",
            "due": day(1130),
        },
        client,
    )
    written += referral.written
    accepted = run(
        "task", {"request_id": f"live-{tag}-accept", "task": referral.written[1], "to": "accepted"}, client
    )
    written.append(accepted.written[-1])
    assert client.read_reference(referral.written[1])["status"] == "accepted"
    assert [r.task for r in worklist(client, owners=[f"Organization/{program['id']}"])] == [
        referral.written[1]
    ]
    assert patient_summary(client, patient).name == f"Test Fhircare{tag}"
    again = run(
        "refer",
        {
            "request_id": f"live-{tag}-refer",
            "patient": patient,
            "service": "diabetes-education",
            "performer": f"Organization/{program['id']}",
            "requester": f"Practitioner/{coordinator['id']}",
            "reason": "diabetes",
            "priority": "routine",
            "due": day(1130),
        },
        client,
    )
    assert again.repeated and again.written[:2] == referral.written[:2]
