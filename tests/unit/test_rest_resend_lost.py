"""The throttled rest of a transaction a server applied entry by entry, sent again, and its answer
lost (the connection dropped): the rest may have been applied, so no per-entry answer is claimed
(the run withdraws only its Provenance instead of undoing what may now be pointed at), and the error
names what the first answer committed and the next step."""

from __future__ import annotations

import json

import pytest
import requests
import responses

from fhircare.errors import PartialWrite, RateLimited
from fhircare.fhir import FhirClient
from fhircare.fhir.pacing import Pacer
from fhircare.fhir.throttle import Throttle
from tests.unit.test_throttle_batches import BASE, answer, created, enroll_like
from tests.unit.test_throttle_pacing import FakeTime
from tests.unit.test_throttle_waits import medplum_entry


@responses.activate
def test_a_rest_whose_re_send_gets_no_answer_names_what_committed_and_claims_no_entry():
    fake = FakeTime()
    first = answer("transaction", created("Patient", "p"), medplum_entry(1), medplum_entry(1))
    answers: list = [first, requests.exceptions.ConnectionError("dropped")]

    def callback(request):
        nxt = answers.pop(0)
        if isinstance(nxt, Exception):
            raise nxt
        return 200, {"Content-Type": "application/fhir+json"}, json.dumps(nxt)

    responses.add_callback(responses.POST, BASE, callback=callback)
    throttle = Throttle(30.0, Pacer(clock=fake.clock, sleep=fake.sleep))
    with FhirClient(BASE, retries=0, throttle=throttle) as client, pytest.raises(PartialWrite) as raised:
        client.transaction(enroll_like(), names=["patient", "plan", "provenance"])
    error = raised.value
    assert not isinstance(error, RateLimited)
    assert error.written == ["Patient/p"] and error.results == []
    assert "no answer" in str(error) and "same request_id" in str(error)
    assert "nothing was written" not in str(error)
