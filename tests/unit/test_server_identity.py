"""What is learned about a server is keyed by base URL and identity, and never holds a token; a
non-atomic server that resolves conditional references (the full Medplum server's shape, measured)
gets its partial write undone, and the coordinator is told which payload field names nothing."""

from __future__ import annotations

import base64
import json
from typing import Any

import responses
from requests.auth import HTTPBasicAuth

from fhircare.errors import UnresolvedReference
from fhircare.fhir import FhirClient
from fhircare.fhir.auth import BackendServicesAuth, BearerAuth
from fhircare.fhir.behaviour import MAX_KEYS, BehaviourStore, ServerBehaviour, store_key
from fhircare.fhir.identity import identity_of, token_identity
from fhircare.workflows import run
from tests.support.clock import day

BASE = "http://fhir.test/r4"


def _jwt(claims: dict[str, Any]) -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    return f"{part({'alg': 'RS256'})}.{part(claims)}.c2lnbmF0dXJl"


def test_a_jwt_is_keyed_by_its_identity_claims_not_by_the_token():
    one = _jwt({"iss": "https://auth", "sub": "user-1", "client_id": "app", "exp": 1, "jti": "a"})
    refreshed = _jwt({"iss": "https://auth", "sub": "user-1", "client_id": "app", "exp": 2, "jti": "b"})
    other_project = _jwt(
        {"iss": "https://auth", "sub": "user-1", "client_id": "app", "profile": "Practitioner/9"}
    )
    assert token_identity(one) == token_identity(refreshed)  # a refreshed token learns nothing again
    assert token_identity(one) != token_identity(other_project)
    assert token_identity(one).startswith("jwt:") and "user-1" not in token_identity(one)


def test_an_opaque_token_is_kept_as_a_digest_only():
    identity = identity_of(BearerAuth("s3cret-token"))
    assert identity.startswith("token:") and "s3cret" not in identity
    assert identity != identity_of(BearerAuth("another-token"))


def test_other_credentials_and_an_explicit_profile():
    assert identity_of(None) == ""
    assert identity_of(BearerAuth("x"), profile="tenant-a") == "profile:tenant-a"
    backend = BackendServicesAuth("https://auth/token", "client-1", "not-a-key")
    assert identity_of(backend).startswith("client:")  # no token is fetched for it
    assert identity_of(HTTPBasicAuth("alice", "pw")).startswith("user:")
    assert "pw" not in identity_of(HTTPBasicAuth("alice", "pw"))


def test_clients_of_one_base_with_different_tokens_learn_apart(tmp_path):
    store = BehaviourStore(tmp_path)
    with FhirClient(BASE, auth=BearerAuth("a"), behaviour_store=store) as a:
        a.learn(atomic_transactions=False)
    with FhirClient(BASE, auth=BearerAuth("b"), behaviour_store=store) as b:
        assert b.behaviour.atomic_transactions is None
    with FhirClient(BASE, behaviour_store=store) as anonymous:
        assert anonymous.policy.key == BASE  # a client without credentials keeps the base URL alone
    with FhirClient(BASE, auth=BearerAuth("a"), behaviour_store=store) as again:
        assert again.behaviour.atomic_transactions is False
    assert '"a"' not in (tmp_path / "servers.json").read_text(encoding="utf-8")


def test_a_client_whose_credentials_change_follows_them(tmp_path):
    store = BehaviourStore(tmp_path)
    store.save(
        store_key(BASE, identity_of(BearerAuth("b"), secret=store.secret)),
        ServerBehaviour(atomic_transactions=False),
    )
    with FhirClient(BASE, auth=BearerAuth("a"), behaviour_store=store) as client:
        assert client.behaviour.atomic_transactions is None
        client.session.auth = BearerAuth("b")  # the sidecar sets Backend Services auth this way
        assert client.behaviour.atomic_transactions is False


def test_the_store_keeps_the_most_recently_saved_keys():
    store = BehaviourStore(None)
    for n in range(MAX_KEYS + 5):
        store.save(f"{BASE} #token:{n}", ServerBehaviour(offset_paging=True))
    keys = store.keys()
    assert len(keys) == MAX_KEYS and keys[-1] == f"{BASE} #token:{MAX_KEYS + 4}"
    assert f"{BASE} #token:0" not in keys


# ---- the full Medplum server's shape: conditional references resolved, entries applied one by one ----

PLAN = {
    "resourceType": "CarePlan",
    "id": "cp1",
    "meta": {"versionId": "1", "lastUpdated": "2020-01-01T00:00:00Z"},
    "status": "active",
    "intent": "plan",
    "subject": {"reference": "Patient/p1"},
}


class NonAtomicServer:
    """Answers the read batch, the transaction (entry by entry: the ServiceRequest and Task fail on
    the performer that resolves to nothing, the CarePlan update and Provenance are applied), the undo
    and the reference check."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, Any]] = []

    def bundle(self, request: Any) -> tuple[int, dict[str, str], str]:
        body = json.loads(request.body)
        self.sent.append(("POST", body["type"], body))
        entries = body["entry"]
        if body["type"] == "transaction":
            answers = [_answer_for(e) for e in entries]
            return (
                200,
                {},
                json.dumps({"resourceType": "Bundle", "type": "transaction-response", "entry": answers}),
            )
        answers = []
        for entry in entries:
            url = entry["request"]["url"]
            if url.startswith("Provenance?"):
                answers.append(
                    {
                        "response": {"status": "200"},
                        "resource": {"resourceType": "Bundle", "type": "searchset", "entry": []},
                    }
                )
            elif url == "CarePlan/cp1":
                answers.append({"response": {"status": "200"}, "resource": PLAN})
            elif url.startswith("Organization/"):
                answers.append({"response": {"status": "404"}})
            else:
                rtype, _, rid = url.partition("/")
                answers.append(
                    {"response": {"status": "200"}, "resource": {"resourceType": rtype, "id": rid}}
                )
        return 200, {}, json.dumps({"resourceType": "Bundle", "type": "batch-response", "entry": answers})


def _answer_for(entry: dict[str, Any]) -> dict[str, Any]:
    request = entry["request"]
    if request["method"] == "PUT":
        return {"response": {"status": "200 OK", "etag": 'W/"2"', "location": "CarePlan/cp1/_history/2"}}
    if entry["resource"]["resourceType"] == "Provenance":
        return {"response": {"status": "201 Created", "location": "Provenance/pv1/_history/1"}}
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "error",
                "code": "invalid",
                "diagnostics": "Conditional reference 'Organization?_id=gone' not found",
            }
        ],
    }
    return {"response": {"status": "400 Bad Request", "outcome": outcome}}


@responses.activate
def test_a_dangling_update_is_put_back_and_the_missing_performer_named(tmp_path):
    server = NonAtomicServer()
    responses.add_callback(responses.POST, BASE, callback=server.bundle)
    put = responses.put(f"{BASE}/CarePlan/cp1", json={**PLAN, "meta": {"versionId": "3"}})
    deleted = responses.delete(f"{BASE}/Provenance/pv1", status=204)
    store = BehaviourStore(tmp_path)
    with FhirClient(BASE, auth=BearerAuth("project-token"), behaviour_store=store, retries=0) as client:
        client.learn(conditional_references=True, legacy_stamps=False)  # known: resolved inside transactions
        payload = {
            "patient": "Patient/p1",
            "service": "diabetes-education",
            "performer": "Organization/gone",
            "requester": "Practitioner/c1",
            "reason": "diabetes",
            "priority": "routine",
            "due": day(22),
            "care_plan": "CarePlan/cp1",
        }
        try:
            run("refer", payload, client)
        except UnresolvedReference as exc:
            error = exc
        else:
            raise AssertionError("the run should have been refused")
        assert client.behaviour.atomic_transactions is False
    assert error.exit_code == 2 and [i.expression for i in error.issues] == [("$.performer",)]
    assert put.call_count == 1 and deleted.call_count == 1
    restore = put.calls[0].request
    assert restore.headers["If-Match"] == 'W/"2"'  # on the version the failed run wrote
    assert json.loads(restore.body) == {k: v for k, v in PLAN.items() if k != "meta"}  # the pre-image
    kinds = [kind for _, kind, _ in server.sent]
    assert kinds == ["batch", "transaction", "batch"]  # read, write, then the reference check
