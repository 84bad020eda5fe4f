"""fhircare history: what fhircare did for a patient, from Provenance."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from fhircare.views.history import patient_history
from fhircare.workflows import run
from tests.support.clock import day

FHIRCARE = str(Path(sys.executable).with_name("fhircare"))


def test_history_lists_each_workflow_run_for_the_patient_with_who_and_what(client, fhir_server, uid):
    patient = f"Patient/{client.create({'resourceType': 'Patient', 'name': [{'family': 'Hist'}]})['id']}"
    other = f"Patient/{client.create({'resourceType': 'Patient', 'name': [{'family': 'Other'}]})['id']}"
    coordinator = (
        f"Practitioner/{client.create({'resourceType': 'Practitioner', 'name': [{'family': 'C'}]})['id']}"
    )
    program = f"Organization/{client.create({'resourceType': 'Organization', 'name': 'P'})['id']}"
    payload = {
        "patient": patient,
        "service": "diabetes-education",
        "performer": program,
        "requester": coordinator,
        "reason": "diabetes",
        "priority": "routine",
        "due": day(3),
        "request_id": f"hist-{uid}",
    }
    referral = run("refer", payload, client)
    run("refer", {**payload, "patient": other, "request_id": f"other-{uid}"}, client)
    run("task", {"task": referral.written[1], "to": "accepted", "actor": coordinator}, client)

    sent = client.request_count
    rows = patient_history(client, patient)

    assert client.request_count - sent == 1  # one page as large as the server allows
    assert rows.truncated is False
    assert [r.workflow for r in rows] == ["refer", "task"]
    sent = client.request_count
    assert [r.workflow for r in patient_history(client, patient, page_size=1)] == ["refer", "task"]
    assert client.request_count - sent >= 2  # a page size given is kept
    assert rows[0].who == coordinator and rows[0].request_id == f"hist-{uid}"
    assert sorted(rows[0].targets) == sorted(referral.written[:2])
    assert rows[1].targets == [referral.written[1]]
    printed = subprocess.run(
        [FHIRCARE, "--base", fhir_server.base_url, "history", patient, "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert [r["workflow"] for r in json.loads(printed.stdout)] == ["refer", "task"]
