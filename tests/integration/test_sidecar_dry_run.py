"""``POST /api/v1/workflows/<name>?dry_run=1``: the transaction the run would send, and nothing written."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from fhircare.settings import Settings
from tests.integration.sidecar_harness import Sidecar
from tests.support.cases import CASES


@pytest.fixture()
def dev(fhir_server) -> Iterator[Sidecar]:
    with Sidecar(Settings(base_url=fhir_server.base_url)) as running:
        yield running


def test_a_dry_run_answers_the_transaction_and_writes_nothing(dev, client, fhir_server, uid):
    case = CASES["refer+care_plan"](client, uid)
    counts = fhir_server.resource_counts()
    answer = requests.post(f"{dev.url}/api/v1/workflows/refer?dry_run=1", json=case.payload, timeout=30)

    assert answer.status_code == 200, answer.text
    bundle = answer.json()
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "transaction"
    methods = [(e["request"]["method"], e["request"]["url"].split("/")[0]) for e in bundle["entry"]]
    assert methods == [
        ("POST", "ServiceRequest"),
        ("POST", "Task"),
        ("PUT", "CarePlan"),
        ("POST", "Provenance"),
    ]
    assert fhir_server.resource_counts() == counts
    assert "activity" not in client.read_reference(case.payload["care_plan"])
