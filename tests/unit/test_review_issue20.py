"""Adversarial review of issue 20, client behaviour only (``responses``, a fake clock): the waits a
server names, however odd, the settings that pace a client, and what the behaviour cache keeps.
Tests marked ``xfail(strict=True)`` prove a defect found in review; the others guard what held."""

from __future__ import annotations

import hashlib
import json

import pytest
import responses
from click.testing import CliRunner

from fhircare.errors import RateLimited
from fhircare.fhir import FhirClient
from fhircare.fhir.auth import BearerAuth
from fhircare.fhir.behaviour import BehaviourStore
from fhircare.fhir.pacing import Pacer
from fhircare.fhir.throttle import MAX_ROUNDS, Throttle
from tests.unit.test_throttle_pacing import FakeTime

BASE = "http://fhir.test/r4"
THROTTLED = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "throttled"}]}


@pytest.fixture()
def fake() -> FakeTime:
    return FakeTime()


def _client(fake: FakeTime, budget: float = 30.0) -> FhirClient:
    return FhirClient(BASE, retries=0, throttle=Throttle(budget, Pacer(clock=fake.clock, sleep=fake.sleep)))


# ---- the wait a server names ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"Retry-After": "inf"},
        {"Retry-After": "1e999"},
        {"RateLimit-Remaining": "0", "RateLimit-Reset": "nan"},
        {"RateLimit": '"fhirInteractions";r=0;t=nan'},
    ],
    ids=["retry-after-inf", "retry-after-overflow", "reset-nan", "structured-nan"],
)
@responses.activate
def test_a_garbage_wait_on_a_whole_429_ends_as_rate_limited(fake, headers):
    responses.get(f"{BASE}/Patient/1", status=429, headers=headers, json=THROTTLED)
    with _client(fake) as client, pytest.raises(RateLimited) as raised:
        client.read("Patient", "1")
    assert raised.value.exit_code == 75 and "rate limited by the server" in raised.value.message


@responses.activate
def test_a_garbage_wait_in_a_throttled_entry_ends_as_rate_limited(fake):
    entry = {
        "response": {
            "status": "429 Too Many Requests",
            "outcome": {
                "resourceType": "OperationOutcome",
                "issue": [
                    {"severity": "error", "code": "throttled", "diagnostics": '{"_msBeforeNext": 1e999}'}
                ],
            },
        }
    }
    responses.post(BASE, json={"resourceType": "Bundle", "type": "batch-response", "entry": [entry]})
    with _client(fake) as client, pytest.raises(RateLimited):
        client.read_batch(["Patient/1"])


@pytest.mark.parametrize("retry_after", ["0", "-5"])
@responses.activate
def test_a_server_that_always_answers_429_with_no_wait_is_asked_a_bounded_number_of_times(fake, retry_after):
    """Guard: Retry-After 0 (or a negative one, read as 0) does not loop forever: MAX_ROUNDS sends
    again at most, then RateLimited (exit 75)."""
    responses.get(f"{BASE}/Patient/1", status=429, headers={"Retry-After": retry_after}, json=THROTTLED)
    with _client(fake) as client, pytest.raises(RateLimited) as raised:
        client.read("Patient", "1")
    assert len(responses.calls) == MAX_ROUNDS + 1 and raised.value.exit_code == 75


@responses.activate
def test_entries_throttled_forever_with_no_wait_are_sent_again_a_bounded_number_of_times(fake):
    """Guard: a batch whose entry is answered 429 with a zero wait every time ends as RateLimited
    after MAX_ROUNDS re-sends, each carrying only the throttled entry."""
    throttled = {
        "response": {
            "status": "429",
            "outcome": {
                "resourceType": "OperationOutcome",
                "issue": [{"severity": "error", "code": "throttled", "diagnostics": '{"_msBeforeNext": 0}'}],
            },
        }
    }
    found = {"response": {"status": "200 OK"}, "resource": {"resourceType": "Patient", "id": "2"}}
    bodies: list[dict] = []

    def answer(request):
        body = json.loads(request.body)
        bodies.append(body)
        entries = [found if e["request"]["url"] == "Patient/2" else throttled for e in body["entry"]]
        return 200, {}, json.dumps({"resourceType": "Bundle", "type": "batch-response", "entry": entries})

    responses.add_callback(responses.POST, BASE, callback=answer)
    with _client(fake) as client, pytest.raises(RateLimited):
        client.read_batch(["Patient/1", "Patient/2"])
    assert len(bodies) == MAX_ROUNDS + 1
    assert all([e["request"]["url"] for e in b["entry"]] == ["Patient/1"] for b in bodies[1:])


def test_a_reset_given_as_a_unix_time_holds_as_long_as_the_same_reset_in_seconds(fake, monkeypatch):
    """Guard: ``RateLimit-Reset`` as delta seconds and as an absolute epoch (X-RateLimit style) hold
    the next request for the same time, and neither longer than the budget."""
    monkeypatch.setattr("fhircare.fhir.ratelimit.time.time", lambda: 1_800_000_000.0)
    delta = Pacer(clock=fake.clock, sleep=fake.sleep)
    delta.observe({"RateLimit-Remaining": "0", "RateLimit-Reset": "20"})
    epoch = Pacer(clock=fake.clock, sleep=fake.sleep)
    epoch.observe({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1800000020"})
    assert delta.held_for() == pytest.approx(20.0) and epoch.held_for() == pytest.approx(20.0)
    far = Pacer(clock=fake.clock, sleep=fake.sleep)
    far.observe({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1800086400"})  # a day away
    assert far.acquire(max_hold=60) == 0.0  # not waited out here: the answer will say RateLimited


# ---- settings -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, value",
    [
        ("FHIRCARE_MAX_REQUESTS_PER_MINUTE", "0"),
        ("FHIRCARE_MAX_REQUESTS_PER_MINUTE", "-10"),
        ("FHIRCARE_MAX_REQUESTS_PER_MINUTE", "nan"),
        ("FHIRCARE_MAX_REQUESTS_PER_MINUTE", "sixty"),
        ("FHIRCARE_THROTTLE_BUDGET", "a minute"),
    ],
)
def test_a_bad_pacing_setting_is_a_configuration_error_naming_it(name, value, tmp_path):
    from fhircare.cli.main import cli

    env = {name: value, "FHIRCARE_CACHE_DIR": str(tmp_path)}
    done = CliRunner().invoke(cli, ["check", "http://127.0.0.1:9/fhir"], env=env)
    assert done.exit_code == 3, done.output
    assert name in done.output


# ---- what the behaviour cache keeps ---------------------------------------------------------------


def test_a_client_without_credentials_never_gets_what_a_tenant_learned(tmp_path):
    """Guard: atomicity learned with a token is kept under that identity only; a client without
    credentials on the same base (and another token) knows nothing, and the file holds no token."""
    store = BehaviourStore(tmp_path)
    with FhirClient(BASE, auth=BearerAuth("tenant-a-opaque-token"), behaviour_store=store) as tenant:
        tenant.learn(atomic_transactions=False, strict_refused_at=9)
    with FhirClient(BASE, behaviour_store=BehaviourStore(tmp_path)) as anonymous:
        assert anonymous.behaviour.atomic_transactions is None
        assert anonymous.behaviour.strict_refused_at is None
    with FhirClient(BASE, auth=BearerAuth("tenant-b"), behaviour_store=BehaviourStore(tmp_path)) as other:
        assert other.behaviour.atomic_transactions is None
    kept = (tmp_path / "servers.json").read_text(encoding="utf-8")
    assert "tenant-a-opaque-token" not in kept
    assert hashlib.sha256(b"tenant-a-opaque-token").hexdigest() not in kept


def test_servers_json_does_not_give_back_a_guessable_token(tmp_path):
    token = "changeme"  # a static API key as teams set them on a development server
    with FhirClient(BASE, auth=BearerAuth(token), behaviour_store=BehaviourStore(tmp_path)) as client:
        client.learn(atomic_transactions=False)
    kept = (tmp_path / "servers.json").read_text(encoding="utf-8")
    words = ["secret", "password", "changeme", "admin", "token", "letmein"]
    recovered = [w for w in words if hashlib.sha256(w.encode()).hexdigest()[:16] in kept]
    assert recovered == []


# ---- a throttled rest sent again -----------------------------------------------------------------


@pytest.mark.parametrize(
    "second",
    [
        (429, {"Retry-After": "120"}, THROTTLED),
        (
            503,
            {},
            {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "transient"}]},
        ),
    ],
    ids=["whole-429-past-the-budget", "503"],
)
@responses.activate
def test_a_rest_whose_re_send_fails_still_names_what_the_first_answer_committed(fake, second):
    """A server applies the transaction entry by entry: the Patient is committed, the CarePlan and
    the Provenance are throttled; sending those two again fails as a whole. The error must be a
    partial write naming Patient/p (so the workflow undoes it), never 'nothing was written'."""
    from fhircare.errors import PartialWrite
    from tests.unit.test_throttle_batches import Server, answer, created, enroll_like
    from tests.unit.test_throttle_waits import medplum_entry

    server = Server(
        answer("transaction", created("Patient", "p"), medplum_entry(800), medplum_entry(800)), second
    )
    with _client(fake) as client, pytest.raises(Exception) as raised:
        client.transaction(enroll_like(), names=["patient", "plan", "provenance"])
    assert len(server.bodies) == 2  # the rest was sent again once
    error = raised.value
    assert isinstance(error, PartialWrite), f"{type(error).__name__}: {error}"
    assert error.written == ["Patient/p"] and "nothing was written" not in str(error)


# ---- what a throttled probe teaches -------------------------------------------------------------


@pytest.mark.parametrize(
    "status, headers", [(429, {"Retry-After": "120"}), (503, {})], ids=["throttled", "server-failed"]
)
@responses.activate
def test_a_throttled_or_failed_include_probe_teaches_nothing(fake, tmp_path, status, headers):
    from fhircare.errors import FhirServerError

    responses.get(f"{BASE}/Task", status=status, headers=headers, json=THROTTLED)
    pacer = Pacer(clock=fake.clock, sleep=fake.sleep)
    with FhirClient(
        BASE, retries=0, throttle=Throttle(30, pacer), behaviour_store=BehaviourStore(tmp_path)
    ) as client:
        try:
            client.include_works("Task", "Task:focus")
        except FhirServerError:
            pass  # saying so is fine; remembering a verdict is not
    with FhirClient(BASE, behaviour_store=BehaviourStore(tmp_path)) as later:
        assert later.behaviour.include == {}


@responses.activate
def test_an_answer_where_every_probe_entry_failed_on_its_own_is_not_atomicity(fake):
    """The server answers the atomicity probe HTTP 200 with each entry's own failure: its create
    refused (a profile it requires), its update 412. Nothing shows all-or-nothing here."""
    first = {"resourceType": "Basic", "id": "first", "meta": {"versionId": "1"}, "code": {"text": "x"}}
    responses.post(f"{BASE}/Basic", status=201, json=first)

    def failed(status: str, code: str) -> dict:
        outcome = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": code}]}
        return {"response": {"status": status, "outcome": outcome}}

    responses.post(
        BASE,
        json={
            "resourceType": "Bundle",
            "type": "transaction-response",
            "entry": [failed("400 Bad Request", "invalid"), failed("412 Precondition Failed", "conflict")],
        },
    )
    responses.get(f"{BASE}/Basic", json={"resourceType": "Bundle", "type": "searchset", "entry": []})
    responses.delete(f"{BASE}/Basic/first", status=204)
    with FhirClient(
        BASE,
        retries=0,
        throttle=Throttle(30, Pacer(clock=fake.clock, sleep=fake.sleep)),
        behaviour_store=BehaviourStore(None),
    ) as client:
        verdict = client.policy.probe_atomicity()
        assert verdict is not True
        assert client.behaviour.atomic_transactions is not True


@responses.activate
def test_check_names_the_basic_a_throttled_atomicity_probe_could_not_delete(fake):
    """The probe's first Basic is written; its transaction and every delete of the Basic are
    throttled far past the clean-up's own budget: check says which Basic it left on the server."""
    from fhircare.cli.check import _atomicity
    from fhircare.fhir.cleanup import ProbeLeftBehind

    first = {"resourceType": "Basic", "id": "first", "meta": {"versionId": "1"}, "code": {"text": "x"}}
    responses.post(f"{BASE}/Basic", status=201, json=first)
    responses.post(BASE, status=429, headers={"Retry-After": "3600"}, json=THROTTLED)
    responses.delete(f"{BASE}/Basic/first", status=429, headers={"Retry-After": "3600"}, json=THROTTLED)
    with _client(fake) as client:
        with pytest.raises(ProbeLeftBehind) as left:
            client.policy.probe_atomicity()
        assert left.value.left == ["Basic/first"]
        said = _atomicity(client)
    assert said.startswith("unknown; LEFT ON THE SERVER: Basic/first")
    assert "rate limited by the server" in said


def test_the_key_of_the_identity_digests_is_made_once_beside_servers_json_and_kept_private(tmp_path):
    """The key is made by the first client that needs it (mode 0600) and reused by the next, so a
    second process finds what the first learned for the same token."""
    import stat

    with FhirClient(BASE, auth=BearerAuth("tok-1"), behaviour_store=BehaviourStore(tmp_path)) as first:
        first.learn(atomic_transactions=False)
    key_file = tmp_path / "servers.key"
    made = key_file.read_bytes()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    with FhirClient(BASE, auth=BearerAuth("tok-1"), behaviour_store=BehaviourStore(tmp_path)) as again:
        assert again.behaviour.atomic_transactions is False
    assert key_file.read_bytes() == made
