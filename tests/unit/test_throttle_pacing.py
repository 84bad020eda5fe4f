"""Client-side pacing: a token bucket for FHIRCARE_MAX_REQUESTS_PER_MINUTE and the holds a server's
RateLimit headers ask for. A fake clock and sleep: no wall clock is read or asserted."""

from __future__ import annotations

import pytest
import responses

from fhircare.fhir import FhirClient
from fhircare.fhir.pacing import Pacer
from fhircare.fhir.throttle import Throttle
from fhircare.settings import Settings

BASE = "http://fhir.test/r4"


class FakeTime:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture()
def fake():
    return FakeTime()


def test_requests_under_the_rate_go_at_once_and_the_rest_wait_their_turn(fake):
    pacer = Pacer(max_per_minute=120, burst=2, clock=fake.clock, sleep=fake.sleep)  # one each 0.5 s
    waits = [pacer.acquire() for _ in range(6)]
    assert waits[:2] == [0.0, 0.0]  # the burst
    assert waits[2:] == pytest.approx([0.5, 0.5, 0.5, 0.5])
    assert fake.now == pytest.approx(102.0)


def test_a_minute_of_requests_never_exceeds_the_rate_plus_the_burst(fake):
    pacer = Pacer(max_per_minute=60, clock=fake.clock, sleep=fake.sleep)  # burst: one
    sent_at = []
    for _ in range(150):
        pacer.acquire()
        sent_at.append(fake.now)
    for start in sent_at:
        assert sum(1 for t in sent_at if start <= t < start + 60) <= 61


def test_idle_time_refills_the_bucket_up_to_its_burst_only(fake):
    pacer = Pacer(max_per_minute=600, burst=5, clock=fake.clock, sleep=fake.sleep)  # 10 a second
    for _ in range(5):
        pacer.acquire()
    fake.now += 3600  # an hour idle: five tokens, not 36,000
    assert [pacer.acquire() for _ in range(5)] == [0.0] * 5
    assert pacer.acquire() == pytest.approx(0.1)


def test_without_a_rate_requests_are_not_paced(fake):
    pacer = Pacer(clock=fake.clock, sleep=fake.sleep)
    assert [pacer.acquire() for _ in range(1000)] == [0.0] * 1000
    assert fake.slept == []


def test_a_spent_quota_in_the_ratelimit_header_holds_the_next_request_until_its_reset(fake):
    pacer = Pacer(clock=fake.clock, sleep=fake.sleep)
    pacer.observe({"RateLimit": '"fhirInteractions";r=0;t=35'})
    assert pacer.acquire() == pytest.approx(35.0)
    assert pacer.acquire() == 0.0  # the quota is back


def test_a_quota_with_points_left_holds_nothing(fake):
    pacer = Pacer(clock=fake.clock, sleep=fake.sleep)
    pacer.observe({"RateLimit": '"fhirInteractions";r=12;t=35', "RateLimit-Remaining": "0"})
    assert pacer.acquire() == 0.0


def test_a_hold_longer_than_the_budget_is_not_waited_out_by_pacing(fake):
    pacer = Pacer(clock=fake.clock, sleep=fake.sleep)
    pacer.observe({"RateLimit-Remaining": "0", "RateLimit-Reset": "3600"})
    assert pacer.acquire(max_hold=60) == 0.0  # the request goes; its answer will name the wait


def test_a_rate_must_be_positive():
    with pytest.raises(ValueError):
        Pacer(max_per_minute=0)


def test_settings_read_the_pacing_rate_and_the_throttle_budget():
    settings = Settings.from_env({"FHIRCARE_MAX_REQUESTS_PER_MINUTE": "300", "FHIRCARE_THROTTLE_BUDGET": "5"})
    assert (settings.max_requests_per_minute, settings.throttle_budget) == (300.0, 5.0)
    default = Settings.from_env({})
    assert (default.max_requests_per_minute, default.throttle_budget) == (None, 60.0)
    client = FhirClient.from_settings(settings)
    assert client.throttle.budget == 5.0 and client.throttle.pacer.rate == 5.0


@responses.activate
def test_a_client_paces_its_requests_through_its_session(fake):
    responses.get(f"{BASE}/Patient/1", json={"resourceType": "Patient", "id": "1"})
    pacer = Pacer(max_per_minute=30, clock=fake.clock, sleep=fake.sleep)  # one each 2 s
    with FhirClient(BASE, retries=0, throttle=Throttle(pacer=pacer)) as client:
        for _ in range(4):
            client.read("Patient", "1")
    assert len(responses.calls) == 4
    assert fake.slept == pytest.approx([2.0, 2.0, 2.0])
