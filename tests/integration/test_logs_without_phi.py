"""With DEBUG logging on, the logs name types, ids of requests, counts and timings, never PHI or tokens."""

from __future__ import annotations

import io
import json
import logging

from fhircare.fhir import FhirClient
from fhircare.fhir.auth import BearerAuth
from fhircare.logs import configure_logging
from fhircare.views.summary import patient_summary
from fhircare.views.worklist import worklist
from fhircare.workflows import run
from tests.support.clock import day

SECRETS = {
    "given name": "Zebulon",
    "family name": "Quixotesca",
    "birth date": "1931-07-19",
    "identifier": "MRN-PHI-778899",
    "phone": "555-0199-77",
    "note": "lives alone above the bakery",
    "reason text": "worried about eviction",
    "token": "tok-SECRET-abc123",
}


def test_debug_logs_of_a_coordinator_story_hold_no_phi_and_no_token(fhir_server, client, uid):
    patient = client.create(
        {
            "resourceType": "Patient",
            "identifier": [{"system": "urn:test:mrn", "value": SECRETS["identifier"]}],
            "name": [{"family": SECRETS["family name"], "given": [SECRETS["given name"]]}],
            "birthDate": SECRETS["birth date"],
            "telecom": [{"system": "phone", "value": SECRETS["phone"]}],
        }
    )
    coordinator = client.create({"resourceType": "Practitioner", "name": [{"family": "Coord"}]})
    program = client.create({"resourceType": "Organization", "name": "Program"})
    stream = io.StringIO()
    configure_logging(logging.DEBUG, as_json=True)
    handler = logging.getLogger("fhircare").handlers[0]
    handler.setStream(stream)  # type: ignore[attr-defined]
    try:
        with FhirClient(fhir_server.base_url, auth=BearerAuth(SECRETS["token"])) as authed:
            result = run(
                "refer",
                {
                    "patient": f"Patient?identifier=urn:test:mrn|{SECRETS['identifier']}",
                    "service": "social-worker-referral",
                    "performer": f"Organization/{program['id']}",
                    "requester": f"Practitioner/{coordinator['id']}",
                    "reason": {"text": SECRETS["reason text"]},
                    "priority": "urgent",
                    "due": day(3),
                    "note": SECRETS["note"],
                },
                authed,
            )
            run("task", {"task": result.written[1], "to": "accepted"}, authed)
            worklist(authed, owners=[f"Organization/{program['id']}"])
            patient_summary(authed, f"Patient/{patient['id']}")
    finally:
        configure_logging(logging.WARNING)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]

    assert len(lines) >= 6  # the story was logged: requests and workflow runs
    assert any(line.get("workflow") == "refer" and line.get("request_id") for line in lines)
    assert all("status" in line and "elapsed_ms" in line for line in lines if line["msg"] == "fhir request")
    text = stream.getvalue()
    leaked = {what: value for what, value in SECRETS.items() if value in text}
    assert leaked == {}
