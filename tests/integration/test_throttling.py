"""A server that throttles: Medplum's points quota (tests/servers/medplum/quota.mjs, modelled on the full
server: a read 1 point, a search 20, a write 100; a batch over it answered HTTP 200 with 429 entries, a
request or an atomic transaction over it HTTP 429). Throttled entries are waited out and never read as
"missing"; a write throttled past the budget ends with exit 75, saying what stayed written, and the
server's state is checked independently.

Only the Medplum test server has a quota (the embedded server has none), so these tests run there, on
a server of their own with short windows (1-3 s instead of the full server's minute).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fhircare.fhir import FhirClient
from fhircare.fhir.auth import BearerAuth
from fhircare.workflows import run
from tests.servers.medplum import MedplumServer
from tests.support.cases import basics, enroll_case, referral_payload

FHIRCARE = str(Path(sys.executable).with_name("fhircare"))
#: a bearer token naming a Medplum project without transaction-bundles (transactions applied entry by entry)
NON_ATOMIC = "project-without-transaction-bundles"


@pytest.fixture(scope="module")
def quota_server():
    with MedplumServer(projects={NON_ATOMIC: "batch"}) as server:
        with FhirClient(server.base_url) as warm:
            warm.resolves_conditional_references()  # learned before any quota: tests count their own
        with FhirClient(server.base_url, auth=BearerAuth(NON_ATOMIC)) as warm:
            warm.resolves_conditional_references()
        yield server


@pytest.fixture()
def quota(quota_server):
    """Set the quota for one test (``quota(points, window_s)``); it is off again afterwards."""
    yield lambda points, window_s: quota_server.set_quota(points, window_s)
    quota_server.set_quota(None)


def _drain(client: FhirClient, reference: str, points: int) -> None:
    """Spend ``points`` of the current window in one batch of reads (a read costs 1)."""
    client.read_batch([reference] * points)


def _fhircare(*args: str, env: dict[str, str] | None = None, stdin: str | None = None):
    return subprocess.run(
        [FHIRCARE, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        env={**os.environ, **(env or {})},
    )


def test_a_read_batch_with_throttled_entries_sends_only_those_again_and_gets_every_resource(
    quota_server, quota, uid
):
    with FhirClient(quota_server.base_url) as client:
        patients = [
            f"Patient/{client.create({'resourceType': 'Patient', 'name': [{'family': f'T{uid}{i}'}]})['id']}"
            for i in range(5)
        ]
        quota(3, 1.0)  # three reads a second
        before = quota_server.counter.count
        answers = client.read_batch(patients)
        sent = quota_server.counter.count - before
    assert [f"Patient/{a['resource']['id']}" for a in answers] == patients
    assert {a["response"]["status"][:3] for a in answers} == {"200"}
    assert sent == 2  # the batch, then its two throttled entries alone
    assert quota_server.quota()["refused"] >= 1


def test_a_referral_whose_reference_checks_are_throttled_is_written_never_missing(quota_server, quota, uid):
    with FhirClient(quota_server.base_url) as setup:
        b = basics(setup, uid)
    payload = referral_payload(b, uid, request_id=f"throttled-checks-{uid}")
    with FhirClient(quota_server.base_url) as client:  # nothing known yet: it checks every reference
        quota(1000, 2.0)
        _drain(client, b["patient"], 998)  # two points left: the checks overflow the window
        before = quota_server.counter.count
        result = run("refer", payload, client)
        sent = quota_server.counter.count - before
    assert quota_server.quota()["refused"] >= 1
    assert sent == 3  # the check batch, its throttled entries again, the transaction
    with FhirClient(quota_server.base_url) as check:
        request = check.read_reference(result.written[0])
        assert request["subject"]["reference"] == b["patient"]
        assert request["performer"][0]["reference"] == b["org"]


@pytest.mark.parametrize("mode", ["atomic", "non-atomic"])
def test_the_demo_completes_against_the_quota_with_its_throttled_entries_waited_out(
    quota_server, quota, mode
):
    quota_server.reset()
    quota(12_000, 1.0)  # the 20-patient demo spends some 60,000 points in 5 s unthrottled
    env = {"FHIRCARE_BEARER_TOKEN": NON_ATOMIC} if mode == "non-atomic" else {}
    done = _fhircare("demo", "--patients", "20", "--base", quota_server.base_url, env=env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "Seeded 20 patients" in done.stdout
    assert "name nothing on the server" not in done.stdout + done.stderr
    assert quota_server.quota()["refused"] > 0  # it was throttled, and waited
    quota_server.set_quota(None)
    counts = quota_server.resource_counts()
    assert counts["Patient"] == 20
    with FhirClient(quota_server.base_url) as check:  # every run's Provenance names what it wrote
        provenances = list(check.search("Provenance", {"_count": "1000"}))
        targets = [t["reference"] for p in provenances for t in p.get("target", [])]
        assert targets and all(r in check.read_found(targets) for r in set(targets))


def test_an_atomic_write_throttled_past_the_budget_exits_75_and_writes_nothing(quota_server, quota, uid):
    with FhirClient(quota_server.base_url) as client:
        case = enroll_case(client, uid)
    before = quota_server.resource_counts()
    quota(150, 3.0)  # one write a window: the enrollment's transaction never fits
    done = _fhircare(
        "run",
        "enroll",
        "-",
        "--base",
        quota_server.base_url,
        stdin=json.dumps(case.payload),
        env={"FHIRCARE_THROTTLE_BUDGET": "1"},
    )
    assert done.returncode == 75, done.stdout + done.stderr
    assert "rate limited by the server; retry after 3 s" in done.stderr + done.stdout
    assert "nothing was written" in done.stderr + done.stdout
    quota_server.set_quota(None)
    assert quota_server.resource_counts() == before


def test_a_non_atomic_write_throttled_past_the_budget_exits_75_naming_what_stayed_written(
    quota_server, quota, uid
):
    with FhirClient(quota_server.base_url) as client:
        case = enroll_case(client, uid)
    before = quota_server.resource_counts()
    quota(
        250, 3.0
    )  # its lookup and the Patient's conditional create (search 20 + write 100) fit, the rest waits
    done = _fhircare(
        "run",
        "enroll",
        "-",
        "--base",
        quota_server.base_url,
        stdin=json.dumps(case.payload),
        env={"FHIRCARE_THROTTLE_BUDGET": "1", "FHIRCARE_BEARER_TOKEN": NON_ATOMIC},
    )
    said = done.stderr + done.stdout
    assert done.returncode == 75, said
    assert "429" in said or "rate limited by the server" in said
    quota_server.set_quota(None)
    after = quota_server.resource_counts()
    with FhirClient(quota_server.base_url) as check:
        mrn = case.payload["patient"]["identifier"]
        found = list(check.search("Patient", {"identifier": f"{mrn['system']}|{mrn['value']}"}))
    if "nothing stayed written" in said:  # what the server applied was undone (workflows/undo.py)
        assert after == before and found == []
    else:  # or it stayed, and the message names it
        assert len(found) == 1 and f"Patient/{found[0]['id']}" in said
        assert {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)} == {
            "Patient": 1
        }

    again = _fhircare(  # the same request, after the wait: completes it, duplicates nothing
        "run",
        "enroll",
        "-",
        "--base",
        quota_server.base_url,
        stdin=json.dumps(case.payload),
        env={"FHIRCARE_BEARER_TOKEN": NON_ATOMIC},
    )
    assert again.returncode == 0, again.stdout + again.stderr
    written = json.loads(again.stdout)["written"]
    if found:  # the Patient that stayed is the one the run completes with
        assert [r for r in written if r.startswith("Patient/")] == [f"Patient/{found[0]['id']}"]
    final = quota_server.resource_counts()
    assert final["Patient"] == before.get("Patient", 0) + 1
