"""The CLI against either server: ``--base`` after the command, and ``check`` reporting what fhircare
learned about the server and the strategy it picks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from fhircare.fhir import FhirClient
from tests.support.clock import day

FHIRCARE = str(Path(sys.executable).with_name("fhircare"))


def _fhircare(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [FHIRCARE, *args], input=stdin, capture_output=True, text=True, timeout=120, check=False
    )


def test_base_after_the_command_runs_a_workflow_and_stores_literal_references(fhir_server, client, uid):
    patient = client.create({"resourceType": "Patient", "name": [{"family": "Late"}]})
    coordinator = client.create({"resourceType": "Practitioner", "name": [{"family": "Coord"}]})
    payload = {
        "patient": f"Patient/{patient['id']}",
        "owner": f"Practitioner/{coordinator['id']}",
        "about": f"Patient/{patient['id']}",
        "due": day(6),
        "note": "Call back",
        "request_id": f"late-{uid}",
    }
    done = _fhircare("run", "follow-up", "-", "--base", fhir_server.base_url, stdin=json.dumps(payload))
    assert done.returncode == 0, done.stderr
    written = json.loads(done.stdout)["written"]
    task = client.read_reference(written[0])
    assert task["for"]["reference"] == f"Patient/{patient['id']}"
    assert task["owner"]["reference"] == f"Practitioner/{coordinator['id']}"

    listed = _fhircare(
        "worklist",
        "--owner",
        f"Practitioner/{coordinator['id']}",
        "--format",
        "json",
        "--base",
        fhir_server.base_url,
    )
    assert listed.returncode == 0, listed.stderr
    assert [row["task"] for row in json.loads(listed.stdout)] == [written[0]]


def test_check_reports_what_the_server_does_and_the_mode_fhircare_picks(fhir_server):
    done = _fhircare("check", fhir_server.base_url, "--json")
    assert done.returncode == 0, done.stderr
    observed = json.loads(done.stdout)["behaviour"]
    with FhirClient(fhir_server.base_url) as client:
        resolves = client.resolves_conditional_references()
    assert observed["conditionalReferencesInTransaction"] is resolves
    assert observed["referenceCheck"].startswith("transaction" if resolves else "batch")
    if fhir_server.kind == "medplum":  # measured: Medplum ignores _include and limits strict transactions
        assert observed["include"] == {
            "worklist": False,
            "authorizations": False,
            "caseload": False,
            "summary": False,
        }
        assert observed["conditionalTransactionLimit"].startswith("refuses 9")
        assert "plain creates" in observed["writeStrategy"]
    else:
        assert observed["conditionalTransactionLimit"].startswith("none seen")


def test_dry_run_prints_the_transaction_and_writes_nothing(fhir_server, client, uid):
    patient = client.create({"resourceType": "Patient", "name": [{"family": "Dry"}]})
    coordinator = client.create({"resourceType": "Practitioner", "name": [{"family": "Coord"}]})
    program = client.create({"resourceType": "Organization", "name": "Program"})
    payload = {
        "patient": f"Patient/{patient['id']}",
        "service": "diabetes-education",
        "performer": f"Organization/{program['id']}",
        "requester": f"Practitioner/{coordinator['id']}",
        "reason": "HbA1c 9.1%, newly on insulin",
        "priority": "routine",
        "due": day(17),
    }
    counts = fhir_server.resource_counts()
    done = _fhircare(
        "run", "refer", "-", "--dry-run", "--base", fhir_server.base_url, stdin=json.dumps(payload)
    )
    assert done.returncode == 0, done.stderr
    bundle = json.loads(done.stdout)
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "transaction"
    assert [e["resource"]["resourceType"] for e in bundle["entry"]] == [
        "ServiceRequest",
        "Task",
        "Provenance",
    ]
    assert all(e["request"]["method"] == "POST" for e in bundle["entry"])
    assert fhir_server.resource_counts() == counts
