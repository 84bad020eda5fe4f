"""Workflow x fault: after fhircare's retries (and, where it gives up, one re-run by the user), the
server holds exactly one copy of every resource the workflow writes, and no partial transaction.

The matrix this test produces is written to test-artifacts/reliability-matrix.json; docs/reliability.md
shows the last run.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from fhircare.errors import TransientError
from fhircare.fhir import FhirClient
from fhircare.fhir.probes import probe_transaction_limit
from fhircare.namespaces import Namespaces
from fhircare.workflows import run
from tests.faults.proxy import FaultProxy
from tests.support.cases import CASES
from tests.support.servers import versions

# "x3": the fault repeats three times, more than the client's two retries, so fhircare gives up
FAULTS = ("503", "429", "drop", "delay", "reset", "503x3", "dropx3", "resetx3")
REQUEST_ID = Namespaces()  # the systems the runs here write (the default base), or earlier ones
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
MATRIX: dict[str, dict[str, str]] = {}


@pytest.fixture(scope="module")
def proxy(fhir_server):
    with FaultProxy(fhir_server.base_url) as p:
        # what fhircare learned about the server holds through the proxy too: no probe may take a fault
        with FhirClient(fhir_server.base_url) as direct:
            direct.resolves_conditional_references()
            probe_transaction_limit(direct)
            direct.behaviour_store.save(p.base_url, direct.behaviour)
        yield p


@pytest.fixture(scope="module", autouse=True)
def write_matrix():
    yield
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "reliability-matrix.json").write_text(json.dumps(MATRIX, indent=2, sort_keys=True))


def _stamp_of(resource: dict) -> str | None:
    for ident in (
        resource.get("identifier") or []
        if isinstance(resource.get("identifier"), list)
        else [resource.get("identifier") or {}]
    ):
        if REQUEST_ID.is_system(ident.get("system"), "request-id"):
            return ident["value"]
    for tag in (resource.get("meta") or {}).get("tag") or []:
        if REQUEST_ID.is_system(tag.get("system"), "request-id"):
            return tag["code"]
    return None


def _server_now(client: FhirClient) -> str:
    """The server's clock, as lastUpdated values are written (a throw-away Basic resource)."""
    marker = client.create({"resourceType": "Basic", "code": {"text": "clock"}})
    client.delete("Basic", marker["id"])
    return marker["meta"]["lastUpdated"]


def _copies_by(client: FhirClient, rtype: str, ident: dict) -> int:
    return len(list(client.search(rtype, {"identifier": f"{ident['system']}|{ident['value']}"})))


def _copies(client: FhirClient, rtype: str, stamp: str) -> int:
    key = "_tag" if rtype == "Provenance" else "identifier"
    return len(list(client.search(rtype, {key: REQUEST_ID.token("request-id", stamp)})))


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("workflow", sorted(CASES))
def test_fault_during_the_write_leaves_exactly_one_copy(
    workflow, fault, fhir_server, client, proxy, uid, reference_batch
):
    case = CASES[workflow](client, uid)
    name = workflow.split("+")[0]
    before = fhir_server.resource_counts()
    started = _server_now(client)
    proxy.clear()
    kind, _, repeat = fault.partition("x")
    # the fault hits the transaction: skip the read batch (reads and, on a server that does not
    # resolve conditional references, the reference checks) that comes before it
    skip = max(case.reads, reference_batch)
    path = urlsplit(fhir_server.base_url).path
    proxy.inject(kind, method="POST", path=path, times=int(repeat or 1), skip=skip, delay=2.5)
    faulty = FhirClient(proxy.base_url, timeout=(1.0, 1.5), retries=2, backoff_factor=0.0)
    outcome = "succeeded after retries"
    try:
        result = run(name, case.payload, faulty)
    except TransientError:
        outcome = "gave up; the user's re-run succeeded"
        result = run(name, case.payload, client)
    if result.repeated:
        outcome += " (answered from the earlier commit)"
    proxy.wait_idle()  # a delayed request reaches the server late: judge only after it has
    MATRIX.setdefault(workflow, {})[fault] = outcome
    assert any(what == kind for _, _, what in proxy.log.seen), "the fault was not injected"

    after = fhir_server.resource_counts()
    created = Counter()
    for reference in result.written:
        resource = client.read_reference(reference)
        if versions(client, reference) != 1 or resource["meta"]["lastUpdated"] < started:
            continue  # an existing resource this run updated
        created[resource["resourceType"]] += 1
        stamp = _stamp_of(resource)
        if stamp:
            assert _copies(client, resource["resourceType"], stamp) == 1, f"{reference} has a twin"
        else:  # created on a business key (Patient, Coverage): exactly one holds it
            ident = resource["identifier"][0]
            assert _copies_by(client, resource["resourceType"], ident) == 1, f"{reference} has a twin"
    grown = {
        t: after.get(t, 0) - before.get(t, 0)
        for t in set(after) | set(before)
        if after.get(t, 0) != before.get(t, 0)
    }
    assert grown == dict(created)
    if name == "task":
        task = client.read_reference(case.payload["task"])
        assert task["status"] == "accepted" and versions(client, case.payload["task"]) == 2
    if workflow in ("refer+care_plan", "assess"):
        assert versions(client, case.payload["care_plan"]) == 2  # updated exactly once
    if workflow == "schedule+reschedule":
        old = client.read_reference(case.payload["appointment"])
        assert old["status"] == "cancelled" and versions(client, case.payload["appointment"]) == 2
    if workflow == "transition":
        assert client.read_reference(case.payload["from_plan"])["status"] == "completed"
