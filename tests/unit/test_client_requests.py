"""What the FHIR client sends, byte for byte where it matters (``responses`` with matchers)."""

from __future__ import annotations

import pytest
import responses
from responses import matchers

from fhircare.errors import (
    Conflict,
    FhirServerError,
    Forbidden,
    Gone,
    NotFound,
    PreconditionFailed,
    ServerValidationError,
    TransientError,
    Unauthorized,
)
from fhircare.fhir import FhirClient
from fhircare.fhir.auth import BearerAuth

BASE = "http://fhir.test/r4"
FHIR_JSON = {"Content-Type": "application/fhir+json"}


@pytest.fixture()
def client():
    with FhirClient(BASE, retries=0) as c:
        yield c


@responses.activate
def test_read_sends_accept_fhir_json_and_returns_the_resource(client):
    responses.get(
        f"{BASE}/Patient/1",
        json={"resourceType": "Patient", "id": "1"},
        match=[matchers.header_matcher({"Accept": "application/fhir+json"})],
    )
    assert client.read("Patient", "1") == {"resourceType": "Patient", "id": "1"}
    assert len(responses.calls) == 1


@responses.activate
def test_conditional_create_sends_if_none_exist_and_prefer(client):
    responses.post(
        f"{BASE}/Patient",
        json={"resourceType": "Patient", "id": "9"},
        status=201,
        match=[
            matchers.header_matcher(
                {"If-None-Exist": "identifier=urn:x|1", "Prefer": "return=representation"}
            ),
            matchers.json_params_matcher({"resourceType": "Patient", "active": True}),
        ],
    )
    assert (
        client.create({"resourceType": "Patient", "active": True}, if_none_exist="identifier=urn:x|1")["id"]
        == "9"
    )


@pytest.mark.parametrize("version", ["3", 'W/"3"', 3])
@responses.activate
def test_update_sends_a_weak_etag_if_match(client, version):
    responses.put(
        f"{BASE}/Task/7",
        json={"resourceType": "Task", "id": "7"},
        match=[matchers.header_matcher({"If-Match": 'W/"3"'})],
    )
    client.update({"resourceType": "Task", "id": "7", "status": "accepted"}, if_match=version)
    assert len(responses.calls) == 1


@responses.activate
def test_vread_and_delete_use_the_right_urls(client):
    responses.get(f"{BASE}/Task/7/_history/2", json={"resourceType": "Task", "id": "7"})
    responses.delete(f"{BASE}/Task/7", status=204)
    client.vread("Task", "7", "2")
    client.delete("Task", "7")
    assert [c.request.method for c in responses.calls] == ["GET", "DELETE"]


@responses.activate
def test_transaction_posts_a_bundle_of_type_transaction_to_the_base(client):
    bundle = {
        "resourceType": "Bundle",
        "entry": [
            {
                "request": {"method": "POST", "url": "Task", "ifNoneExist": "identifier=a|b"},
                "resource": {"resourceType": "Task"},
            }
        ],
    }
    responses.post(
        BASE,
        json={
            "resourceType": "Bundle",
            "type": "transaction-response",
            "entry": [{"response": {"status": "201 Created"}}],
        },
        match=[matchers.json_params_matcher({**bundle, "type": "transaction"})],
    )
    client.transaction(bundle)
    assert len(responses.calls) == 1


@responses.activate
def test_batch_with_a_wrong_answer_type_is_a_server_error(client):
    responses.post(BASE, json={"resourceType": "Bundle", "type": "searchset"})
    with pytest.raises(FhirServerError, match="batch-response"):
        client.batch({"entry": []})


@responses.activate
def test_search_sends_the_parameters_and_repeats_list_values(client):
    responses.get(
        f"{BASE}/Task",
        json={"resourceType": "Bundle", "type": "searchset", "entry": []},
        match=[
            matchers.query_param_matcher(
                {"owner": "Practitioner/1", "_include": ["Task:patient", "Task:focus"]}
            )
        ],
    )
    assert (
        list(client.search("Task", {"owner": "Practitioner/1", "_include": ["Task:patient", "Task:focus"]}))
        == []
    )


@responses.activate
def test_bearer_auth_is_sent_and_never_shown(client):
    authed = FhirClient(BASE, auth=BearerAuth("s3cret"))
    responses.get(
        f"{BASE}/metadata",
        json={"resourceType": "CapabilityStatement"},
        match=[matchers.header_matcher({"Authorization": "Bearer s3cret"})],
    )
    authed.capabilities()
    assert "s3cret" not in repr(authed.session.auth)


@responses.activate
def test_capabilities_are_fetched_once(client):
    responses.get(f"{BASE}/metadata", json={"resourceType": "CapabilityStatement", "fhirVersion": "4.0.1"})
    client.capabilities()
    client.capabilities()
    assert len(responses.calls) == 1


def test_every_call_carries_the_default_timeouts(monkeypatch):
    seen = []
    client = FhirClient(BASE)

    def fake_send(request, **kwargs):
        seen.append(kwargs.get("timeout"))
        raise AssertionError("stop")

    monkeypatch.setattr(client.session.get_adapter(BASE), "send", fake_send)
    for call in (
        lambda: client.read("Patient", "1"),
        lambda: client.create({"resourceType": "Patient"}),
        lambda: client.batch({"entry": []}),
    ):
        with pytest.raises(AssertionError):
            call()
    assert seen == [(3.05, 30.0)] * 3


@responses.activate
def test_a_201_with_only_a_location_is_read_back(client):
    responses.post(f"{BASE}/Patient", status=201, headers={"Location": f"{BASE}/Patient/5/_history/1"})
    responses.get(f"{BASE}/Patient/5", json={"resourceType": "Patient", "id": "5"})
    assert client.create({"resourceType": "Patient"})["id"] == "5"
    assert len(responses.calls) == 2


@responses.activate
def test_a_201_with_neither_body_nor_location_is_a_clear_server_error(client):
    responses.post(f"{BASE}/Patient", status=201)
    with pytest.raises(FhirServerError, match="neither a body nor a Location"):
        client.create({"resourceType": "Patient"})


def test_owns_only_urls_under_the_base():
    client = FhirClient(BASE)
    assert client.owns(f"{BASE}/Task?_offset=20")
    assert not client.owns("http://evil.test/r4/Task")
    assert not client.owns("http://fhir.test/r4-other/Task")
    assert not client.owns("https://fhir.test/r4/Task")


OUTCOME = {
    "resourceType": "OperationOutcome",
    "issue": [
        {
            "severity": "error",
            "code": "invalid",
            "diagnostics": "Task.status: bad",
            "expression": ["Task.status"],
        }
    ],
}


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, ServerValidationError),
        (401, Unauthorized),
        (403, Forbidden),
        (404, NotFound),
        (409, Conflict),
        (410, Gone),
        (412, PreconditionFailed),
        (422, ServerValidationError),
        (500, TransientError),
        (503, TransientError),
    ],
)
@responses.activate
def test_each_error_status_becomes_its_exception_with_the_outcome_issues(client, status, error):
    responses.get(f"{BASE}/Task/1", json=OUTCOME, status=status)
    with pytest.raises(error) as caught:
        client.read("Task", "1")
    assert caught.value.http_status == status
    assert caught.value.issues[0].diagnostics == "Task.status: bad"
    assert caught.value.issues[0].expression == ("Task.status",)
    assert caught.value.issues[0].severity == "error"


@responses.activate
def test_an_html_error_page_gives_the_right_error_and_a_message(client):
    responses.get(
        f"{BASE}/Task/1", body="<html><body>Bad gateway</body></html>", status=502, content_type="text/html"
    )
    with pytest.raises(TransientError, match="HTTP 502"):
        client.read("Task", "1")


@responses.activate
def test_a_200_that_is_not_json_is_a_server_error_not_a_value_error(client):
    responses.get(f"{BASE}/Task/1", body="<html>login</html>", status=200, content_type="text/html")
    with pytest.raises(FhirServerError, match="not JSON"):
        client.read("Task", "1")


@responses.activate
def test_a_read_answered_with_another_resource_type_is_a_server_error(client):
    responses.get(f"{BASE}/Task/1", json={"resourceType": "Patient", "id": "1"})
    with pytest.raises(FhirServerError, match="expected a Task"):
        client.read("Task", "1")


@responses.activate
def test_error_messages_never_carry_the_query_string(client):
    responses.get(f"{BASE}/Patient", json=OUTCOME, status=400)
    with pytest.raises(ServerValidationError) as caught:
        list(client.search("Patient", {"identifier": "urn:mrn|SECRET-123", "name": "Quixote"}))
    assert "SECRET-123" not in str(caught.value) and "Quixote" not in str(caught.value)
