"""Throttled entries inside a batch or transaction answer (HTTP 200, Medplum's quota) and whole 429s:
what the client sends again, how long it waits, and what it says when the budget runs out.
A fake clock and sleep: no wall clock is read or asserted."""

from __future__ import annotations

import json

import pytest
import responses

from fhircare.errors import PartialWrite, RateLimited, RateLimitedPartialWrite, TransientError
from fhircare.fhir import FhirClient
from fhircare.fhir.pacing import Pacer
from fhircare.fhir.throttle import Throttle
from tests.unit.test_client_retries import busy, scripted  # noqa: F401 - a fixture
from tests.unit.test_throttle_pacing import FakeTime
from tests.unit.test_throttle_waits import medplum_entry

BASE = "http://fhir.test/r4"


def found(rtype: str, rid: str) -> dict:
    return {"response": {"status": "200 OK"}, "resource": {"resourceType": rtype, "id": rid}}


def created(rtype: str, rid: str) -> dict:
    return {"response": {"status": "201 Created", "location": f"{rtype}/{rid}/_history/1"}}


def answer(kind: str, *entries: dict) -> dict:
    return {"resourceType": "Bundle", "type": f"{kind}-response", "entry": list(entries)}


class Server:
    """Answers POSTs to the base from a queue; keeps every body it received."""

    def __init__(self, *answers: dict | tuple[int, dict, dict]) -> None:
        self.answers = list(answers)
        self.bodies: list[dict] = []
        responses.add_callback(responses.POST, BASE, callback=self.answer)

    def answer(self, request):
        self.bodies.append(json.loads(request.body))
        nxt = self.answers.pop(0)
        status, headers, body = nxt if isinstance(nxt, tuple) else (200, {}, nxt)
        return status, {"Content-Type": "application/fhir+json", **headers}, json.dumps(body)

    def urls(self, n: int) -> list[str]:
        return [e["request"]["url"] for e in self.bodies[n]["entry"]]


@pytest.fixture()
def fake():
    return FakeTime()


def client_with(fake: FakeTime, budget: float = 60.0) -> FhirClient:
    pacer = Pacer(clock=fake.clock, sleep=fake.sleep)
    return FhirClient(BASE, retries=0, throttle=Throttle(budget, pacer))


def reads(*urls: str) -> dict:
    return {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [{"request": {"method": "GET", "url": u}} for u in urls],
    }


@responses.activate
def test_a_read_batch_sends_again_only_its_throttled_entries_after_the_wait_the_server_names(fake):
    server = Server(
        answer("batch", found("Patient", "a"), medplum_entry(1500), medplum_entry(1500)),
        answer("batch", found("Practitioner", "b"), found("Organization", "c")),
    )
    with client_with(fake) as client:
        got = client.read_batch(["Patient/a", "Practitioner/b", "Organization/c"])
    assert [e["resource"]["id"] for e in got] == ["a", "b", "c"]
    assert len(server.bodies) == 2  # one batch, then the throttled two, nothing else
    assert server.urls(1) == ["Practitioner/b", "Organization/c"]
    assert fake.slept == pytest.approx([1.5])


@responses.activate
def test_entries_throttled_again_wait_again_until_none_is(fake):
    server = Server(
        answer("batch", medplum_entry(1000), medplum_entry(1000)),
        answer("batch", found("Patient", "a"), medplum_entry(2000)),
        answer("batch", found("Patient", "b")),
    )
    with client_with(fake) as client:
        got = client.read_batch(["Patient/a", "Patient/b"])
    assert [e["resource"]["id"] for e in got] == ["a", "b"]
    assert [server.urls(i) for i in range(3)] == [
        ["Patient/a", "Patient/b"],
        ["Patient/a", "Patient/b"],
        ["Patient/b"],
    ]
    assert fake.slept == pytest.approx([1.0, 2.0])


@responses.activate
def test_without_a_named_wait_the_ratelimit_header_of_the_answer_decides(fake):
    bare = {"response": {"status": "429 Too Many Requests"}}
    Server(
        (200, {"RateLimit": '"fhirInteractions";r=0;t=4'}, answer("batch", found("Patient", "a"), bare)),
        answer("batch", found("Patient", "b")),
    )
    with client_with(fake) as client:
        client.read_batch(["Patient/a", "Patient/b"])
    assert sum(fake.slept) == pytest.approx(4.0)


@responses.activate
def test_a_read_batch_throttled_past_the_budget_says_so_and_never_missing(fake):
    server = Server(answer("batch", found("Patient", "a"), medplum_entry(45_000)))
    with client_with(fake, budget=10) as client, pytest.raises(RateLimited) as raised:
        client.read_batch(["Patient/a", "Patient/b"])
    assert len(server.bodies) == 1 and fake.slept == pytest.approx(
        []
    )  # a wait past the budget is not started
    error = raised.value
    assert isinstance(error, TransientError) and error.exit_code == 75 and error.status == 503
    assert error.retry_after == 45.0 and error.written == []
    assert error.message == (
        "batch: 1 of 2 entries rate limited by the server; retry after 45 s; nothing was written"
    )


@responses.activate
def test_a_batch_of_creates_names_what_it_wrote_when_the_rest_stays_throttled(fake):
    Server(answer("batch", created("Patient", "p1"), medplum_entry(90_000)))
    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [{"resource": {"resourceType": "Patient"}, "request": {"method": "POST", "url": "Patient"}}]
        * 2,
    }
    with client_with(fake) as client, pytest.raises(RateLimited) as raised:
        client.batch(bundle)
    assert raised.value.written == ["Patient/p1"]
    assert "1 written (Patient/p1)" in raised.value.message


def enroll_like() -> dict:
    """A transaction whose later entries point at the first one by its urn:uuid."""
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:p",
                "resource": {"resourceType": "Patient"},
                "request": {"method": "POST", "url": "Patient", "ifNoneExist": "identifier=x|1"},
            },
            {
                "fullUrl": "urn:uuid:c",
                "resource": {"resourceType": "CarePlan", "subject": {"reference": "urn:uuid:p"}},
                "request": {"method": "POST", "url": "CarePlan"},
            },
            {
                "fullUrl": "urn:uuid:v",
                "resource": {"resourceType": "Provenance", "target": [{"reference": "urn:uuid:c"}]},
                "request": {"method": "POST", "url": "Provenance"},
            },
        ],
    }


@responses.activate
def test_a_transaction_throttled_before_anything_was_committed_is_sent_again_whole(fake):
    server = Server(
        answer("transaction", medplum_entry(800), medplum_entry(800), medplum_entry(800)),
        answer("transaction", created("Patient", "p"), created("CarePlan", "c"), created("Provenance", "v")),
    )
    with client_with(fake) as client:
        done = client.transaction(enroll_like())
    assert [e["response"]["location"].split("/_history")[0] for e in done["entry"]] == [
        "Patient/p",
        "CarePlan/c",
        "Provenance/v",
    ]
    assert server.bodies[1] == server.bodies[0] and fake.slept == pytest.approx([0.8])


@responses.activate
def test_a_transaction_applied_entry_by_entry_sends_only_its_throttled_rest_pointing_at_what_was_committed(
    fake,
):
    server = Server(
        answer("transaction", created("Patient", "p"), medplum_entry(800), medplum_entry(800)),
        answer("transaction", created("CarePlan", "c"), created("Provenance", "v")),
    )
    with client_with(fake) as client:
        done = client.transaction(enroll_like())
        assert client.behaviour.atomic_transactions is False  # learned: it committed entry by entry
    assert [e["response"]["status"] for e in done["entry"]] == ["201 Created"] * 3
    rest = server.bodies[1]
    assert rest["type"] == "transaction" and [e["fullUrl"] for e in rest["entry"]] == [
        "urn:uuid:c",
        "urn:uuid:v",
    ]
    assert rest["entry"][0]["resource"]["subject"] == {"reference": "Patient/p"}
    assert rest["entry"][1]["resource"]["target"] == [{"reference": "urn:uuid:c"}]  # still in the bundle


@responses.activate
def test_a_transaction_still_throttled_past_the_budget_names_what_stayed_written(fake):
    Server(answer("transaction", created("Patient", "p"), created("CarePlan", "c"), medplum_entry(30_000)))
    with client_with(fake, budget=5) as client, pytest.raises(RateLimitedPartialWrite) as raised:
        client.transaction(enroll_like(), names=["patient", "plan", "provenance"])
    error = raised.value
    assert isinstance(error, PartialWrite) and isinstance(error, RateLimited)  # the workflow's undo applies
    assert error.exit_code == 75 and error.written == ["Patient/p", "CarePlan/c"]
    assert error.message.startswith(
        "transaction: 1 of 3 entries rate limited by the server; retry after 30 s; 2 written (Patient/p, CarePlan/c)"
    )


@responses.activate
def test_a_transaction_refused_for_another_reason_is_not_retried(fake):
    refused = {"response": {"status": "400 Bad Request"}}
    server = Server(answer("transaction", refused, medplum_entry(800), medplum_entry(800)))
    with client_with(fake) as client, pytest.raises(Exception) as raised:
        client.transaction(enroll_like())
    assert not isinstance(raised.value, RateLimited) and len(server.bodies) == 1


@responses.activate
def test_a_whole_429_is_sent_again_after_its_retry_after_even_a_plain_post(fake):
    server = Server(
        (
            429,
            {"Retry-After": "3"},
            {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "throttled"}]},
        ),
        answer("transaction", created("Patient", "p"), created("CarePlan", "c"), created("Provenance", "v")),
    )
    with client_with(fake) as client:
        client.transaction(enroll_like())
    assert len(server.bodies) == 2 and fake.slept == pytest.approx(
        [3.0]
    )  # a 429 was not processed: safe to send again


@responses.activate
def test_a_whole_429_past_the_budget_raises_rate_limited_with_the_wait(fake):
    body = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "throttled", "diagnostics": '{"_msBeforeNext":41000}'}],
    }
    responses.get(f"{BASE}/Patient/1", status=429, json=body)  # Medplum: the wait only in the outcome
    with client_with(fake, budget=30) as client, pytest.raises(RateLimited) as raised:
        client.read("Patient", "1")
    assert raised.value.retry_after == 41.0 and raised.value.exit_code == 75
    assert "rate limited by the server; retry after 41 s; nothing was written" in raised.value.message
    assert len(responses.calls) == 1


@responses.activate
def test_a_committed_entry_pointing_at_a_throttled_one_is_reported_not_sent_again(fake):
    """Medplum gives every create its id before processing any: the CarePlan committed pointing at
    the throttled Patient's id; a Patient sent again would get another id, so nothing is re-sent."""
    bundle = enroll_like()
    bundle["entry"] = [bundle["entry"][1], bundle["entry"][0], bundle["entry"][2]]  # plan first
    server = Server(answer("transaction", created("CarePlan", "c"), medplum_entry(800), medplum_entry(800)))
    with client_with(fake) as client, pytest.raises(RateLimitedPartialWrite) as raised:
        client.transaction(bundle)
    assert len(server.bodies) == 1 and raised.value.written == ["CarePlan/c"]
    assert "retry after 1 s" in raised.value.message


def test_a_429_naming_a_wait_past_the_budget_is_not_slept_by_urllib3(scripted):  # noqa: F811
    """Through a real socket (urllib3's Retry runs): Retry-After 100 with a 2 s budget fails at once."""
    base, script = scripted
    script.answers = [busy(429, "100")]
    client = FhirClient(base, retries=3, backoff_factor=0, throttle=Throttle(budget=2))
    with pytest.raises(RateLimited) as raised:
        client.read("Task", "1")
    assert len(script.seen) == 1 and raised.value.retry_after == 100.0
    assert "retry after 100 s; nothing was written" in raised.value.message
