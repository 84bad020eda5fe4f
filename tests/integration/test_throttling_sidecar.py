"""The sidecar's answer to a server that throttles, through real HTTP on both servers: a workflow
throttled past the budget is a 503 whose OperationOutcome leads with code ``throttled`` and whose
``Retry-After`` says the wait (whole seconds, rounded up); a transient error that names no wait sends
no ``Retry-After``. The quota is Medplum's own (tests/servers/medplum/quota.mjs) on Medplum, the quota
proxy (tests/faults/quota_proxy.py) in front of the embedded server.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from fhircare.fhir import FhirClient
from fhircare.settings import Settings
from tests.faults.quota_proxy import QuotaProxy
from tests.integration.sidecar_harness import Sidecar
from tests.support.cases import basics, enroll_case, referral_payload


@dataclass
class Quota:
    """The base URL to reach the session's server through, with a quota that can be set on it."""

    base_url: str
    set: Callable[..., Any]
    refused: Callable[[], int]


@pytest.fixture()
def quota(fhir_server) -> Iterator[Quota]:
    if getattr(fhir_server, "kind", "embedded") == "medplum":
        with FhirClient(fhir_server.base_url) as warm:  # learned before the quota: it counts the test's own
            warm.resolves_conditional_references()
        yield Quota(fhir_server.base_url, fhir_server.set_quota, lambda: fhir_server.quota()["refused"])
        fhir_server.set_quota(None)
        return
    with QuotaProxy(fhir_server.base_url) as proxy:
        with FhirClient(proxy.base_url) as warm:
            warm.resolves_conditional_references()
        yield Quota(proxy.base_url, proxy.set_quota, lambda: proxy.refused)


def test_a_workflow_throttled_past_the_budget_answers_503_with_retry_after_and_a_throttled_outcome(
    fhir_server, quota, uid
):
    with FhirClient(fhir_server.base_url) as setup:
        case = enroll_case(setup, uid)
    before = fhir_server.resource_counts()
    with Sidecar(Settings(base_url=quota.base_url, throttle_budget=1.0)) as sidecar:
        quota.set(150, 3.0)  # the lookup fits, the enrollment's transaction (a write costs 100) never does
        answer = requests.post(f"{sidecar.url}/api/v1/workflows/enroll", json=case.payload, timeout=60)
    refused = quota.refused()
    quota.set(None)
    assert answer.status_code == 503, answer.text
    wait = answer.headers.get("Retry-After", "")
    assert wait.isdigit() and 1 <= int(wait) <= 3, answer.headers
    outcome = answer.json()
    assert outcome["resourceType"] == "OperationOutcome"
    first = outcome["issue"][0]
    assert first["code"] == "throttled"
    assert f"rate limited by the server; retry after {wait} s" in first["diagnostics"]
    assert "nothing was written" in first["diagnostics"]
    assert refused >= 1
    assert fhir_server.resource_counts() == before  # nothing written


def test_a_transient_error_that_names_no_wait_answers_503_without_retry_after(fhir_server, uid):
    with FhirClient(fhir_server.base_url) as setup:
        b = basics(setup, uid)
    with QuotaProxy(fhir_server.base_url) as proxy:  # no quota: it answers one check entry 503 itself
        proxy.deny = {b["org"]: 503}
        settings = Settings(base_url=proxy.base_url, verify_references="batch")
        with Sidecar(settings) as sidecar:
            answer = requests.post(
                f"{sidecar.url}/api/v1/workflows/refer", json=referral_payload(b, uid), timeout=60
            )
    assert answer.status_code == 503, answer.text
    assert "Retry-After" not in answer.headers
    assert answer.json()["issue"][0]["code"] != "throttled"
    with FhirClient(fhir_server.base_url) as check:  # nothing was written
        assert list(check.search("ServiceRequest", {"subject": b["patient"]})) == []
