"""A server that throttles: a points quota modelled on the full Medplum server's (a read 1 point, a
search 20, a write 100; a batch over it answered HTTP 200 with 429 entries, a request or an atomic
transaction over it HTTP 429). Throttled entries are waited out and never read as "missing"; a write
throttled past the budget ends with exit 75, and the server's state is checked independently.

Neither server has a quota of its own in the suite, so each test brings one, with short windows (1-3 s
instead of the full server's minute): Medplum's router gets it inside (tests/servers/medplum/quota.mjs,
on a server of this module's own), the embedded server through a quota proxy in front of it
(tests/faults/quota_proxy.py: atomic transactions only). The non-atomic variants need Medplum's
per-project transaction modes, so they run on Medplum only. The same proxy, without a quota, answers
chosen batch entries 401/403/404/410/503 in front of either server: only 404 and 410 are "missing".
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fhircare.demo import Seeder
from fhircare.demo.world import DEMO_MRN_SYSTEM
from fhircare.errors import (
    Forbidden,
    RateLimited,
    RateLimitedPartialWrite,
    TransientError,
    Unauthorized,
    UnresolvedReference,
)
from fhircare.fhir import FhirClient
from fhircare.fhir.auth import BearerAuth
from fhircare.fhir.pacing import Pacer
from fhircare.fhir.throttle import Throttle, rate_limited_text
from fhircare.mapping import PlannedEntry
from fhircare.server import EmbeddedServer
from fhircare.settings import Settings
from fhircare.workflows import run
from fhircare.workflows.undo import error_after_undo, failed_entries, undo_applied
from tests.faults.quota_proxy import QuotaProxy
from tests.servers.medplum import MedplumServer
from tests.support.cases import basics, enroll_case, referral_payload
from tests.support.clock import today

TODAY = today()

FHIRCARE = str(Path(sys.executable).with_name("fhircare"))
#: a bearer token naming a Medplum project without transaction-bundles (transactions applied entry by entry)
NON_ATOMIC = "project-without-transaction-bundles"


@dataclass
class Throttled:
    """A server with a quota, whichever it is."""

    kind: str
    base_url: str
    set_quota: Callable[..., Any]
    refused: Callable[[], int]
    requests: Callable[[], int]
    resource_counts: Callable[[], dict[str, int]]


@pytest.fixture(scope="module")
def quota_server():
    with MedplumServer(projects={NON_ATOMIC: "batch"}) as server:
        with FhirClient(server.base_url) as warm:
            warm.resolves_conditional_references()  # learned before any quota: tests count their own
        with FhirClient(server.base_url, auth=BearerAuth(NON_ATOMIC)) as warm:
            warm.resolves_conditional_references()
        yield server


@pytest.fixture(scope="module", params=["embedded", "medplum"])
def throttled(request):
    """Each server with a quota: the embedded one behind the quota proxy, Medplum's with its own."""
    if request.param == "medplum":
        server = request.getfixturevalue("quota_server")
        yield Throttled(
            "medplum",
            server.base_url,
            server.set_quota,
            lambda: server.quota()["refused"],
            lambda: server.counter.count,
            server.resource_counts,
        )
        return
    with EmbeddedServer() as server, QuotaProxy(server.base_url) as proxy:
        with FhirClient(proxy.base_url) as warm:
            warm.resolves_conditional_references()
        yield Throttled(
            "embedded",
            proxy.base_url,
            proxy.set_quota,
            lambda: proxy.refused,
            lambda: proxy.requests,
            server.resource_counts,
        )


@pytest.fixture()
def quota(throttled):
    """Set the quota for one test (``quota(points, window_s)``); it is off again afterwards."""
    yield lambda points, window_s: throttled.set_quota(points, window_s)
    throttled.set_quota(None)


@pytest.fixture()
def medplum_quota(quota_server):
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
    throttled, quota, uid
):
    with FhirClient(throttled.base_url) as client:
        patients = [
            f"Patient/{client.create({'resourceType': 'Patient', 'name': [{'family': f'T{uid}{i}'}]})['id']}"
            for i in range(5)
        ]
        quota(3, 1.0)  # three reads a second
        before = throttled.requests()
        answers = client.read_batch(patients)
        sent = throttled.requests() - before
    assert [f"Patient/{a['resource']['id']}" for a in answers] == patients
    assert {a["response"]["status"][:3] for a in answers} == {"200"}
    assert sent == 2  # the batch, then its two throttled entries alone
    assert throttled.refused() >= 1


def test_a_quota_the_ratelimit_header_says_is_spent_holds_requests_instead_of_hitting_it(
    throttled, quota, uid
):
    with FhirClient(throttled.base_url) as client:
        patient = client.create({"resourceType": "Patient", "name": [{"family": f"Paced{uid}"}]})
        quota(5, 1.0)  # five reads a second; each answer's RateLimit header says how many are left
        before = throttled.requests()
        for _ in range(12):
            assert client.read("Patient", patient["id"])["id"] == patient["id"]
        sent = throttled.requests() - before
    assert sent == 12 and throttled.refused() == 0  # held until each reset: never refused, nothing re-sent


def test_a_referral_whose_reference_checks_are_throttled_is_written_never_missing(throttled, quota, uid):
    with FhirClient(throttled.base_url) as setup:
        b = basics(setup, uid)
    payload = referral_payload(b, uid, request_id=f"throttled-checks-{uid}")
    checked = Settings(base_url=throttled.base_url, verify_references="batch")  # a batch of checks first
    with FhirClient(throttled.base_url) as client:  # nothing known yet: it checks every reference
        quota(1000, 2.0)
        _drain(client, b["patient"], 998)  # two points left: the checks overflow the window
        before = throttled.requests()
        result = run("refer", payload, client, settings=checked)
        sent = throttled.requests() - before
    assert throttled.refused() >= 1
    assert sent == 3  # the check batch, its throttled entries again, the transaction
    with FhirClient(throttled.base_url) as check:
        request = check.read_reference(result.written[0])
        assert request["subject"]["reference"] == b["patient"]
        assert request["performer"][0]["reference"] == b["org"]


def _demo_against_the_quota(
    base_url: str, refused: Callable[[], int], seed: int, env: dict[str, str]
) -> None:
    done = _fhircare("demo", "--patients", "20", "--seed", str(seed), "--base", base_url, env=env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "Seeded 20 patients" in done.stdout
    assert "name nothing on the server" not in done.stdout + done.stderr
    assert refused() > 0  # it was throttled, and waited
    with FhirClient(base_url) as check:
        patients = list(check.search("Patient", {"identifier": f"{DEMO_MRN_SYSTEM}|", "_count": "500"}))
        mine = [p for p in patients if any(f"MRN-{seed}-" in i.get("value", "") for i in p["identifier"])]
        assert len(mine) == 20
        provenances = list(check.search("Provenance", {"_count": "1000"}))  # every target exists
        targets = {t["reference"] for p in provenances for t in p.get("target", [])}
        assert targets and targets <= set(check.read_found(sorted(targets)))


def test_the_demo_completes_against_the_quota_with_its_throttled_entries_waited_out(throttled, quota):
    quota(3_000, 1.0)  # the 20-patient demo spends some 60,000 points, 12,000 a second unthrottled
    _demo_against_the_quota(throttled.base_url, throttled.refused, 31, {})


def test_the_demo_completes_against_the_quota_in_a_non_atomic_project(quota_server, medplum_quota):
    """Medplum only: transactions applied entry by entry (its throttled rest sent again)."""
    medplum_quota(3_000, 1.0)
    refused = lambda: quota_server.quota()["refused"]  # noqa: E731
    _demo_against_the_quota(quota_server.base_url, refused, 32, {"FHIRCARE_BEARER_TOKEN": NON_ATOMIC})


def test_an_atomic_write_throttled_past_the_budget_exits_75_and_writes_nothing(throttled, quota, uid):
    with FhirClient(throttled.base_url) as client:
        case = enroll_case(client, uid)
    before = throttled.resource_counts()
    quota(150, 3.0)  # one write a window: the enrollment's transaction never fits
    done = _fhircare(
        "run",
        "enroll",
        "-",
        "--base",
        throttled.base_url,
        stdin=json.dumps(case.payload),
        env={"FHIRCARE_THROTTLE_BUDGET": "1"},
    )
    assert done.returncode == 75, done.stdout + done.stderr
    assert "rate limited by the server; retry after 3 s" in done.stderr + done.stdout
    assert "nothing was written" in done.stderr + done.stdout
    throttled.set_quota(None)
    assert throttled.resource_counts() == before


def test_a_non_atomic_write_throttled_past_the_budget_is_undone_and_exits_75_with_nothing_written(
    quota_server, medplum_quota, uid
):
    """Medplum only: a project whose transactions are applied entry by entry. What it applied before
    the throttling is undone, and the undo's own requests, throttled in turn (the window stays closed
    until its reset), wait the reset out instead of leaving the Patient written."""
    with FhirClient(quota_server.base_url) as client:
        case = enroll_case(client, uid)
    before = quota_server.resource_counts()
    # its lookup and the Patient's conditional create (search 20 + write 100) fit, the rest waits
    medplum_quota(250, 3.0)
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
    assert re.search(r"rate limited by the server; retry after [1-3] s", said), said
    assert "nothing stayed written" in said and "deleted" in said
    assert quota_server.quota()["refused"] >= 1
    quota_server.set_quota(None)
    assert quota_server.resource_counts() == before, said
    with FhirClient(quota_server.base_url) as check:
        mrn = case.payload["patient"]["identifier"]
        assert list(check.search("Patient", {"identifier": f"{mrn['system']}|{mrn['value']}"})) == []

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
    final = quota_server.resource_counts()
    assert final["Patient"] == before.get("Patient", 0) + 1


def test_an_undo_whose_delete_is_throttled_waits_the_wait_the_server_named_then_says_rate_limited(
    throttled, quota, uid
):
    """On both servers: what a throttled non-atomic run applied is undone even when the undo's DELETE
    is throttled past the client's budget (here 0.5 s), up to the wait the throttled entries named."""
    with FhirClient(throttled.base_url) as setup:
        patient = setup.create({"resourceType": "Patient", "name": [{"family": f"Undo{uid}"}]})
    reference = f"Patient/{patient['id']}"
    planned = [
        PlannedEntry("patient", patient, "urn:uuid:patient"),
        PlannedEntry("provenance", {"resourceType": "Provenance"}, "urn:uuid:provenance"),
    ]
    outcome = {  # Medplum's throttled entry: the limiter's state, 2 s before its reset
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "throttled", "diagnostics": '{"_msBeforeNext":2000}'}],
    }
    results = [
        {"response": {"status": "201 Created", "location": f"{reference}/_history/1"}},
        {"response": {"status": "429 Too Many Requests", "outcome": outcome}},
    ]
    with FhirClient(throttled.base_url, throttle=Throttle(budget=0.5)) as client:
        quota(100, 2.0)
        client.read("Patient", patient["id"])  # one point spent: the DELETE (100) waits for the reset
        undone = undo_applied(client, planned, results, {})
        assert client.throttle.budget == 0.5  # raised for the undo only
    assert throttled.refused() >= 1
    assert undone.complete and undone.deleted == [reference]
    throttled.set_quota(None)
    with FhirClient(throttled.base_url) as check:
        assert check.read_found([reference]) == {}
    partial = RateLimitedPartialWrite("throttled", retry_after=2.0, written=[reference], results=results)
    error = error_after_undo(partial, failed_entries(planned, results), undone)
    assert type(error) is RateLimited and error.exit_code == 75 and error.retry_after == 2.0
    assert str(error).startswith(rate_limited_text(2.0)) and "nothing stayed written" in str(error)
    assert error.written == []


class _PacedClients:
    """A picklable factory of clients paced at ``per_minute`` (as FHIRCARE_MAX_REQUESTS_PER_MINUTE
    paces the CLI's): each seeding worker makes its own."""

    def __init__(self, base_url: str, per_minute: float) -> None:
        self.base_url, self.per_minute = base_url, per_minute

    def __call__(self) -> FhirClient:
        return FhirClient(self.base_url, throttle=Throttle(pacer=Pacer(self.per_minute)))


def test_demo_workers_share_the_client_side_rate_instead_of_each_sending_it(fhir_server, uid):
    per_minute, workers = 1_200, 2  # 20 requests a second, for the two workers together
    seed = int(uid[:6], 16)
    with FhirClient(fhir_server.base_url) as client:
        started, own = time.monotonic(), client.request_count
        world = Seeder(client, seed, TODAY).seed_all(
            40, lambda _: None, workers, _PacedClients(fhir_server.base_url, per_minute)
        )
        seconds = time.monotonic() - started
        by_workers = world.requests - (client.request_count - own)  # the parent's reference data aside
    assert len(world.patients) == 40 and by_workers > 200
    burst = per_minute / 60  # each worker's bucket holds a second of its share: one second together
    # at most the rate over the whole seeding (the workers' start and the reference data included)
    assert by_workers <= burst + per_minute / 60 * seconds, (by_workers, seconds)


@pytest.fixture()
def entry_proxy(fhir_server):
    """A proxy in front of the session's server that answers chosen batch entries itself (no quota)."""
    with QuotaProxy(fhir_server.base_url) as proxy:
        with FhirClient(proxy.base_url) as warm:
            warm.resolves_conditional_references()
        yield proxy


@pytest.mark.parametrize(
    ("status", "error", "exit_code", "words"),
    [
        (404, UnresolvedReference, 2, "1 reference(s) name nothing on the server"),
        (410, UnresolvedReference, 2, "1 reference(s) name nothing on the server"),
        (403, Forbidden, 5, "refused access (403)"),
        (401, Unauthorized, 5, "refused access (401)"),
        (503, TransientError, 75, "the server failed (answered 503)"),
    ],
)
def test_a_reference_check_says_what_its_entry_answered_missing_only_for_404_and_410(
    fhir_server, entry_proxy, uid, status, error, exit_code, words
):
    with FhirClient(fhir_server.base_url) as setup:
        b = basics(setup, uid)
    entry_proxy.deny = {b["org"]: status}  # the performer's existence check
    checked = Settings(base_url=entry_proxy.base_url, verify_references="batch")
    with FhirClient(entry_proxy.base_url) as client, pytest.raises(error) as raised:
        run("refer", referral_payload(b, uid), client, settings=checked)
    assert type(raised.value) is error and raised.value.exit_code == exit_code
    assert words in str(raised.value)
    with FhirClient(fhir_server.base_url) as check:  # nothing was written
        assert list(check.search("ServiceRequest", {"subject": b["patient"]})) == []
