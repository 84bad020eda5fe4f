"""Reading a server's rate limit: the wait it names (headers, an entry's OperationOutcome) and what a
failed batch entry means (missing, access, throttled, server failure)."""

from __future__ import annotations

import json
from email.utils import formatdate

import pytest

from fhircare.errors import (
    FhirServerError,
    Forbidden,
    Gone,
    NotFound,
    RateLimited,
    TransientError,
    Unauthorized,
)
from fhircare.fhir.entries import entry_error, failure_kind
from fhircare.fhir.ratelimit import header_wait, is_throttled, outcome_wait, quota_state

NOW = 1_800_000_000.0  # a Unix time for the header arithmetic (no calendar date is asserted)


def medplum_entry(ms_before_next: int) -> dict:
    """A throttled entry as the full Medplum server writes it (measured on 4.5.2)."""
    state = {
        "_remainingPoints": 0,
        "_msBeforeNext": ms_before_next,
        "_consumedPoints": 50100,
        "_isFirstInDuration": False,
        "limit": 50000,
    }
    return {
        "response": {
            "status": "429",
            "outcome": {
                "resourceType": "OperationOutcome",
                "id": "too-many-requests",
                "issue": [
                    {
                        "severity": "error",
                        "code": "throttled",
                        "details": {"text": "Too Many Requests"},
                        "diagnostics": json.dumps(state),
                    }
                ],
            },
        }
    }


def entry(status: str, code: str = "processing") -> dict:
    outcome = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": code}]}
    return {"response": {"status": status, "outcome": outcome}}


@pytest.mark.parametrize(
    ("headers", "wait"),
    [
        ({"Retry-After": "7"}, 7.0),
        ({"retry-after": "0"}, 0.0),
        ({"Retry-After": formatdate(NOW + 30, usegmt=True)}, 30.0),
        ({"RateLimit": '"fhirInteractions";r=0;t=35'}, 35.0),  # Medplum
        ({"RateLimit": '"a";r=10;t=5, "b";r=0;t=40'}, 40.0),  # the spent one of two quotas
        ({"RateLimit": "limit=100, remaining=0, reset=12"}, 12.0),  # the earlier draft
        ({"RateLimit-Remaining": "0", "RateLimit-Reset": "9"}, 9.0),
        ({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(NOW + 20))}, 20.0),  # a Unix time
        ({"RateLimit": '"fhirInteractions";r=500;t=35'}, None),  # quota left: no wait named
        ({"Retry-After": "soon"}, None),
        ({}, None),
    ],
)
def test_the_wait_a_throttled_answer_names_is_read_from_its_headers(headers, wait):
    assert header_wait(headers, now=NOW) == (None if wait is None else pytest.approx(wait, abs=1))


def test_the_quota_left_is_read_from_the_ratelimit_header():
    assert quota_state({"RateLimit": '"fhirInteractions";r=4900;t=41'}) == (4900.0, 41.0)
    assert quota_state({"Content-Type": "application/fhir+json"}) == (None, None)


@pytest.mark.parametrize(
    ("diagnostics", "wait"),
    [
        ('{"_remainingPoints":0,"_msBeforeNext":1500,"limit":50000}', 1.5),  # Medplum's limiter state
        ('{"msBeforeNext": 250}', 0.25),
        ('{"retryAfter": 3}', 3.0),
        ("Too Many Requests; retry after 12 s", 12.0),
        ("quota exceeded, try again in 2 minutes", 120.0),
        ("please wait 800 ms", 0.8),
        ("Too Many Requests", None),
    ],
)
def test_the_wait_an_entry_names_is_read_from_its_outcome(diagnostics, wait):
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "throttled", "diagnostics": diagnostics}],
    }
    assert outcome_wait(outcome) == wait


def test_a_medplum_throttled_entry_is_throttled_and_names_its_wait():
    throttled = medplum_entry(2500)
    assert is_throttled(throttled)
    assert failure_kind(throttled) == "throttled"
    assert outcome_wait(throttled["response"]["outcome"]) == 2.5


def test_an_outcome_coded_throttled_is_throttled_whatever_its_status():
    assert is_throttled(entry("503", code="throttled"))
    assert not is_throttled(entry("200 OK", code="throttled"))
    assert not is_throttled(entry("404 Not Found", code="not-found"))


@pytest.mark.parametrize(
    ("status", "kind", "error"),
    [
        ("404 Not Found", "missing", NotFound),
        ("410 Gone", "missing", Gone),
        ("401", "access", Unauthorized),
        ("403 Forbidden", "access", Forbidden),
        ("429", "throttled", RateLimited),
        ("500", "server", TransientError),
        ("503 Service Unavailable", "server", TransientError),
        ("", "server", TransientError),
        ("409 Conflict", "refused", FhirServerError),
    ],
)
def test_each_failed_entry_stands_for_its_own_error(status, kind, error):
    failed = entry(status)
    assert failure_kind(failed) == kind
    raised = entry_error("checking that a Patient exists", failed)
    assert type(raised) is error
    assert str(raised).startswith("checking that a Patient exists")


def test_a_throttled_entry_error_says_how_long_to_wait_and_that_nothing_was_written():
    error = entry_error("reading Patient", medplum_entry(2100))
    assert isinstance(error, RateLimited) and isinstance(error, TransientError)
    assert error.exit_code == 75 and error.status == 503 and error.retry_after == 2.1
    assert (
        error.message == "reading Patient: rate limited by the server; retry after 3 s; nothing was written"
    )


def test_a_2xx_entry_is_no_failure():
    assert failure_kind({"response": {"status": "200 OK"}}) is None
    assert failure_kind({"response": {"status": "201"}}) is None
