"""Adversarial review of issue 20 (throttling, non-atomic servers, per-tenant learning) against real
servers. Each test asserts what a user would check on the server afterwards. Tests marked
``xfail(strict=True)`` prove a defect found in review; the others guard what was attacked and held.

The non-atomic cases need Medplum's per-project transaction modes (the bearer token names the
project), so they run on Medplum's router only; the rest run on both suite servers."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import yaml

from fhircare.errors import Conflict, FhirServerError, PartialWrite, RateLimited
from fhircare.fhir import FhirClient
from fhircare.fhir.auth import BearerAuth
from fhircare.fhir.behaviour import BehaviourStore
from fhircare.fhir.pacing import Pacer
from fhircare.fhir.throttle import Throttle
from fhircare.workflows import execute as execute_module
from fhircare.workflows import run
from fhircare.workflows.plan import Planner
from tests.exchange.conftest import our_server, partner_server, proxy, world  # noqa: F401 - fixtures
from tests.servers.medplum import MedplumServer
from tests.support.cases import basics, enroll_case, referral_payload

ATOMIC, BATCH = "review-atomic", "review-batch"
WATCHED = ("Patient", "RelatedPerson", "CarePlan", "ServiceRequest", "Task", "Provenance", "Basic")


@pytest.fixture(scope="module")
def projects():
    """One Medplum base serving a project with transaction bundles and one without."""
    with MedplumServer(projects={ATOMIC: "atomic", BATCH: "batch"}) as server:
        yield server


def _client(server: Any, token: str, **kwargs: Any) -> FhirClient:
    return FhirClient(server.base_url, auth=BearerAuth(token), behaviour_store=BehaviourStore(None), **kwargs)


def _counts(server: Any) -> dict[str, int]:
    counts = server.resource_counts()
    return {t: counts.get(t, 0) for t in WATCHED}


def _entry_refused(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """Fault injected after planning: entry ``name`` is sent to the Patient endpoint (every server
    refuses it: wrong resource type), so it fails after the entries before it were applied."""
    original = Planner.plan

    def plan(self, state, new_uuid=None):
        return [
            dataclasses.replace(e, url="Patient") if e.name == name else e
            for e in original(self, state, new_uuid)
        ]

    monkeypatch.setattr(Planner, "plan", plan)


# ---- undo ---------------------------------------------------------------------------------------


def test_an_existing_patient_matched_by_a_conditional_create_survives_the_undo(projects, uid):
    """An enroll whose Patient entry finds the patient already there (ifNoneExist answered 200):
    when a later entry fails on a non-atomic project, the undo deletes what the run created and
    never the patient it only matched."""
    with _client(projects, BATCH) as client:
        client.learn(atomic_transactions=False)
        case = enroll_case(client, uid)
        mrn = case.payload["patient"]["identifier"]
        existing = client.create(
            {
                "resourceType": "Patient",
                "identifier": [{"system": mrn["system"], "value": mrn["value"]}],
                "name": [{"family": f"Existing{uid}"}],
            }
        )
        before = _counts(projects)
        monkeypatch = pytest.MonkeyPatch()
        try:
            _entry_refused(monkeypatch, "care_plan")
            with pytest.raises(PartialWrite) as partial:
                run("enroll", case.payload, client)
        finally:
            monkeypatch.undo()
        message = str(partial.value)
        assert "nothing stayed written" in message and "deleted" in message  # an undo happened
        assert f"Patient/{existing['id']}" not in message
        assert client.read("Patient", existing["id"])["name"] == [{"family": f"Existing{uid}"}]
    assert _counts(projects) == before


def test_the_same_request_after_a_complete_undo_writes_each_resource_once(projects, uid, monkeypatch):
    """After a non-atomic partial write was undone in full, the same request id runs again and
    leaves exactly one ServiceRequest, Task and Provenance and one plan activity."""
    with _client(projects, BATCH) as client:
        b = basics(client, uid)
        before = _counts(projects)
        payload = referral_payload(b, uid, care_plan=b["plan"], request_id=f"again-{uid}")
        _entry_refused(monkeypatch, "task")
        with pytest.raises(PartialWrite):
            run("refer", payload, client)
        monkeypatch.undo()
        done = run("refer", payload, client)
        plan = client.read_reference(b["plan"])
    after = _counts(projects)
    for rtype in ("ServiceRequest", "Task", "Provenance"):
        assert after[rtype] == before[rtype] + 1, rtype
    assert [a["reference"]["reference"] for a in plan["activity"]] == [done.written[0]]


def test_the_re_run_an_incomplete_undo_advises_does_not_duplicate_the_plan_activity(
    projects, uid, monkeypatch
):
    """The run's CarePlan update cannot be put back (a colleague edited the plan after the run wrote
    it): the ServiceRequest stays, the Provenance is withdrawn, and the error says to run the same
    request again to complete it. Doing so must leave one activity pointing at the referral."""
    with _client(projects, BATCH) as client:
        b = basics(client, uid)
        payload = referral_payload(b, uid, care_plan=b["plan"], request_id=f"incomplete-{uid}")
        original = execute_module.undo_applied

        def a_colleague_edits_the_plan_first(c, planned, results, found):
            plan = client.read_reference(b["plan"])
            client.update({**plan, "description": "edited by a colleague"})
            return original(c, planned, results, found)

        monkeypatch.setattr(execute_module, "undo_applied", a_colleague_edits_the_plan_first)
        _entry_refused(monkeypatch, "task")
        with pytest.raises(PartialWrite) as partial:
            run("refer", payload, client)
        monkeypatch.undo()
        assert "same request_id" in str(partial.value)  # the advice this test follows
        done = run("refer", payload, client)
        plan = client.read_reference(b["plan"])
    referral = done.written[0]
    assert plan["description"] == "edited by a colleague"
    assert [a["reference"]["reference"] for a in plan["activity"]] == [referral]


def test_a_double_submit_is_never_told_done_about_what_the_first_attempt_undoes(projects, uid, monkeypatch):
    """A coordinator's request is sent twice (a double click, a client retry after a timeout). The
    first attempt fails on a non-atomic project after its Provenance committed; the second arrives
    before the first has undone its writes. It is never told "done" about what the undo removes:
    it is told the earlier attempt is not whole (its Task was never written), nothing is written, and
    the same request sent once more, after the undo, writes the referral whole."""
    with _client(projects, BATCH) as first, _client(projects, BATCH) as second:
        b = basics(first, uid)
        before = _counts(projects)
        payload = referral_payload(b, uid, care_plan=b["plan"], request_id=f"twice-{uid}")
        original = execute_module.undo_applied
        seen: list[Any] = []

        def the_second_submit_arrives_first(c, planned, results, found):
            try:
                seen.append(run("refer", payload, second))
            except FhirServerError as refused:  # in its own process: the error it is told
                seen.append(refused)
            return original(c, planned, results, found)

        monkeypatch.setattr(execute_module, "undo_applied", the_second_submit_arrives_first)
        _entry_refused(monkeypatch, "task")
        with pytest.raises(PartialWrite) as partial:
            run("refer", payload, first)
        monkeypatch.undo()
        (told,) = seen
        assert isinstance(told, Conflict), told  # not a result: never "done"
        assert "not whole" in str(told) and "nothing was written" in str(told)
        assert "nothing stayed written" in str(partial.value)  # the first attempt's undo completed
        assert _counts(projects) == before
        done = run("refer", payload, second)  # sent once more, after the undo
        plan = second.read_reference(b["plan"])
        missing = [r for r in done.written if not _exists(second, r)]
    assert missing == [] and not done.repeated
    after = _counts(projects)
    for rtype in ("ServiceRequest", "Task", "Provenance"):
        assert after[rtype] == before[rtype] + 1, rtype
    assert [a["reference"]["reference"] for a in plan["activity"]] == [done.written[0]]


def _exists(client: FhirClient, reference: str) -> bool:
    try:
        client.read_reference(reference)
    except FhirServerError:
        return False
    return True


def test_a_lost_answer_on_a_non_atomic_project_is_sent_again_and_completes_once(projects, uid):
    """Guard: the connection drops after the server applied the run's transaction entry by entry;
    the retry meets the update's If-Match (412) and the conditional creates' matches. Nothing is
    undone that the first attempt wrote, and the run ends done, each resource written once."""
    from urllib.parse import urlsplit

    from tests.faults.proxy import FaultProxy

    with FaultProxy(projects.base_url) as fault_proxy:
        with FhirClient(
            fault_proxy.base_url,
            auth=BearerAuth(BATCH),
            behaviour_store=BehaviourStore(None),
            retries=2,
            backoff_factor=0.01,
        ) as client:
            client.learn(atomic_transactions=False)
            b = basics(client, uid)
            before = _counts(projects)
            fault_proxy.inject("drop", method="POST", path=urlsplit(fault_proxy.base_url).path, skip=1)
            done = run("refer", referral_payload(b, uid, care_plan=b["plan"]), client)
            plan = client.read_reference(b["plan"])
            assert all(_exists(client, r) for r in done.written)
        dropped = [what for method, _, what in fault_proxy.log.seen if method == "POST" and what != "forward"]
        assert dropped == ["drop"]  # the transaction's answer was lost once
    after = _counts(projects)
    for rtype in ("ServiceRequest", "Task", "Provenance"):
        assert after[rtype] == before[rtype] + 1, rtype
    referral = next(r for r in done.written if r.startswith("ServiceRequest/"))
    assert [a["reference"]["reference"] for a in plan["activity"]] == [referral]


def test_an_undone_update_is_put_back_with_its_meta_profiles_and_tags_as_they_were(
    projects, uid, monkeypatch
):
    """Guard: the run's CarePlan update declares profiles the plan never declared (update_entry,
    _declare_profile) and a colleague's tag is on it; the undo puts back exactly the pre-image's
    profiles and tags, not the run's."""
    with _client(projects, BATCH) as client:
        b = basics(client, uid)
        plan = client.read_reference(b["plan"])
        tag = {"system": "urn:test:team", "code": f"team-{uid}"}
        client.update({**plan, "meta": {"tag": [tag]}})
        before = client.read_reference(b["plan"])
        _entry_refused(monkeypatch, "task")
        with pytest.raises(PartialWrite) as partial:
            run("refer", referral_payload(b, uid, care_plan=b["plan"]), client)
        monkeypatch.undo()
        after = client.read_reference(b["plan"])
    assert f"{b['plan']} put back" in str(partial.value)
    assert after["meta"].get("profile") == before["meta"].get("profile")
    assert after["meta"].get("tag") == before["meta"].get("tag") == [tag]
    assert {k: v for k, v in after.items() if k != "meta"} == {k: v for k, v in before.items() if k != "meta"}


# ---- the atomicity probe ----------------------------------------------------------------------


@pytest.mark.parametrize("where", ["embedded", ATOMIC, BATCH])
def test_a_throttled_atomicity_probe_leaves_nothing_behind(where, request):
    """A quota for exactly one write (the embedded server behind the quota proxy; Medplum's router
    with its own quota, atomic and non-atomic projects): the probe's first Basic is created, then its
    transaction and its clean-up are throttled past a short budget."""
    from tests.faults.quota_proxy import QuotaProxy

    if where == "embedded":
        server = request.getfixturevalue("our_server")
        with QuotaProxy(server.base_url) as quota_proxy:
            _probe_under_quota(quota_proxy.base_url, None, quota_proxy.set_quota, server.resource_counts)
    else:
        server = request.getfixturevalue("projects")
        _probe_under_quota(server.base_url, where, server.set_quota, server.resource_counts)


def _probe_under_quota(base: str, token: str | None, set_quota: Any, counts: Any) -> None:
    with FhirClient(
        base,
        auth=BearerAuth(token) if token else None,
        behaviour_store=BehaviourStore(None),
        throttle=Throttle(0.5, Pacer()),
        retries=0,
    ) as client:
        before = counts().get("Basic", 0)
        set_quota(100, 30)
        try:
            with pytest.raises(RateLimited):
                client.policy.probe_atomicity()
        finally:
            set_quota(None)
    assert counts().get("Basic", 0) == before


# ---- read batches: a failed entry that is neither missing nor throttled ---------------------------


def test_a_partner_change_is_not_lost_when_reading_our_task_fails_once(world):  # noqa: F811
    """The partner accepts our referral; the sync cycle that polls it reads our Task in a batch whose
    entry answers 503 (our server failed for a moment). The next cycle must still apply it."""
    from fhircare.exchange import Exchange, parse_partners, sync_once, work
    from tests.faults.quota_proxy import QuotaProxy

    task_id, _ = world.refer()
    sync_once(world.exchange, world.partner)  # sends the referral
    work(world.theirs, world.remote_of(task_id)["id"], "accepted")
    document = yaml.safe_load(world.partners_file.read_text(encoding="utf-8"))
    with QuotaProxy(world.ours.base_url) as local_proxy:
        local_proxy.deny = {f"Task/{task_id}": 503}
        with FhirClient(local_proxy.base_url, retries=0) as flaky_local:
            flaky = Exchange(
                world.exchange.settings, parse_partners(document, str(world.partners_file)), flaky_local
            )
            try:
                cycle = sync_once(flaky, world.partner)["partners"][world.partner]
            finally:
                flaky.close()
    # our server failed, not the partner: the cycle stops for it without moving past the change
    assert cycle["applied"] == 0 and cycle["reachable"] is True
    assert world.ours.read("Task", task_id)["status"] == "requested"
    sync_once(world.exchange, world.partner)  # our server answers again
    assert world.ours.read("Task", task_id)["status"] == "accepted"


# ---- a throttled rest sent again ------------------------------------------------------------------


def test_a_refer_whose_throttled_rest_cannot_be_sent_again_leaves_the_project_as_it_was(
    projects, uid, monkeypatch
):
    """Known non-atomic project. Right before the transaction the quota leaves room for its first
    entry only: the ServiceRequest is committed, the rest throttled; the re-send of the rest then
    meets a 503 (a proxy in between). Whatever the run ends with, nothing of it may stay."""
    from urllib.parse import urlsplit

    from tests.faults.proxy import FaultProxy

    with FaultProxy(projects.base_url) as fault_proxy:
        with FhirClient(
            fault_proxy.base_url, auth=BearerAuth(BATCH), behaviour_store=BehaviourStore(None), retries=0
        ) as client:
            client.learn(atomic_transactions=False)
            b = basics(client, uid)
            before = _counts(projects)
            plan_before = client.read_reference(b["plan"])
            original = Planner.plan

            def plan_then_the_quota_runs_low(self, state, new_uuid=None):
                planned = original(self, state, new_uuid)
                projects.set_quota(200, 1.0)  # room for one conditional create (120 points)
                fault_proxy.inject("503", method="POST", path=urlsplit(fault_proxy.base_url).path, skip=1)
                return planned

            monkeypatch.setattr(Planner, "plan", plan_then_the_quota_runs_low)
            try:
                with pytest.raises(FhirServerError) as raised:
                    run("refer", referral_payload(b, uid, care_plan=b["plan"]), client)
            finally:
                projects.set_quota(None)
            monkeypatch.undo()
            plan_after = client.read_reference(b["plan"])
    message = str(raised.value)
    assert isinstance(raised.value, PartialWrite), message
    assert "answered 503" in message and "nothing stayed written" in message, message
    assert {k: v for k, v in plan_after.items() if k != "meta"} == {
        k: v for k, v in plan_before.items() if k != "meta"
    }
    assert _counts(projects) == before


# ---- pacing ---------------------------------------------------------------------------------------


def test_the_sidecars_request_rate_stays_under_the_setting_whatever_its_threads(
    fhir_server, client, uid, server_requests, monkeypatch
):
    """60 requests a minute (one a second, a burst of one): two request threads of the sidecar, each
    with a client of its own, read three times each. One pacer serves both, so the six reads are
    given six different seconds: waits of 1 to 5 s asked for, on a clock that never moves (no wall
    clock in the test; the sleep only counts)."""
    import threading

    from fhircare.fhir import pacing
    from fhircare.settings import Settings
    from fhircare.web.fhir_access import FhirAccess

    asked: list[float] = []
    lock = threading.Lock()

    def counted_sleep(seconds: float) -> None:
        with lock:
            asked.append(seconds)

    monkeypatch.setattr(pacing, "PACERS", pacing.PacerRegistry(clock=lambda: 100.0, sleep=counted_sleep))
    patient = client.create({"resourceType": "Patient", "name": [{"family": f"Paced{uid}"}]})["id"]
    settings = Settings.from_env(
        {"FHIRCARE_MAX_REQUESTS_PER_MINUTE": "60", "FHIRCARE_AUTH_MODE": "none"},
        base_url=fhir_server.base_url,
    )
    access = FhirAccess(settings)
    errors: list[BaseException] = []
    clients: list[FhirClient] = []
    sent = server_requests()

    def a_request_thread() -> None:
        try:
            shared = access.shared_client()
            clients.append(shared)
            for _ in range(3):
                shared.read("Patient", patient)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=a_request_thread) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert len({id(c) for c in clients}) == 2  # a client per thread (a session is not thread-safe)
    assert len({id(c.throttle.pacer) for c in clients}) == 1  # one pacer for both
    assert server_requests() - sent == 6
    assert sorted(asked) == pytest.approx([1.0, 2.0, 3.0, 4.0, 5.0])
