"""The sidecar's REST API in loopback dev mode and behind a gateway (pass-through), and Backend Services."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from fhircare.errors import Unauthorized
from fhircare.fhir import FhirClient
from fhircare.fhir.auth import BackendServicesAuth
from fhircare.settings import Settings
from tests.integration.sidecar_harness import SECRET, Sidecar
from tests.integration.smart_server import Client, SmartAuthServer
from tests.support.cases import CASES


@pytest.fixture()
def dev(fhir_server) -> Iterator[Sidecar]:
    with Sidecar(Settings(base_url=fhir_server.base_url)) as running:
        yield running


def test_workflow_post_answers_201_then_200_on_the_idempotent_repeat(dev, client, fhir_server, uid):
    case = CASES["refer"](client, uid)
    first = requests.post(f"{dev.url}/api/v1/workflows/refer", json=case.payload, timeout=30)
    counts = fhir_server.resource_counts()
    second = requests.post(f"{dev.url}/api/v1/workflows/refer", json=case.payload, timeout=30)
    assert first.status_code == 201 and second.status_code == 200
    assert first.json()["written"] == second.json()["written"]
    assert fhir_server.resource_counts() == counts


def test_errors_are_operation_outcomes_with_the_right_status(dev, client, fhir_server, uid):
    case = CASES["refer"](client, uid)
    counts = fhir_server.resource_counts()
    cases = [
        (
            requests.post(
                f"{dev.url}/api/v1/workflows/refer",
                data="not json",
                headers={"Content-Type": "application/json"},
                timeout=30,
            ),
            422,
        ),
        (
            requests.post(
                f"{dev.url}/api/v1/workflows/refer", json={**case.payload, "priority": "whenever"}, timeout=30
            ),
            422,
        ),
        (
            requests.post(
                f"{dev.url}/api/v1/workflows/refer",
                data=json.dumps({**case.payload, "priority": float("nan")}),
                headers={"Content-Type": "application/json"},
                timeout=30,
            ),
            422,
        ),
        (requests.post(f"{dev.url}/api/v1/workflows/nope", json={}, timeout=30), 404),
        (requests.get(f"{dev.url}/api/v1/patients/does-not-exist/summary", timeout=30), 404),
        (requests.get(f"{dev.url}/nowhere", timeout=30), 404),
        (requests.delete(f"{dev.url}/api/v1/worklist", timeout=30), 405),
    ]
    for answer, status in cases:
        assert answer.status_code == status, answer.text
        assert answer.headers["Content-Type"].startswith("application/fhir+json")
        assert answer.json()["resourceType"] == "OperationOutcome"
        assert "Traceback" not in answer.text
    bad = cases[1][0].json()
    assert bad["issue"][0]["expression"] == ["$.priority"]
    assert "NaN is not a JSON number" in cases[2][0].json()["issue"][0]["diagnostics"]
    assert fhir_server.resource_counts() == counts


def test_task_transition_endpoint_and_illegal_change_is_409(dev, client, uid):
    task = CASES["task"](client, uid).payload["task"]
    task_id = task.split("/")[1]
    assert (
        requests.post(
            f"{dev.url}/api/v1/tasks/{task_id}/transition", json={"to": "accepted"}, timeout=30
        ).status_code
        == 201
    )
    assert client.read_reference(task)["status"] == "accepted"
    illegal = requests.post(
        f"{dev.url}/api/v1/tasks/{task_id}/transition", json={"to": "requested"}, timeout=30
    )
    assert illegal.status_code == 409 and illegal.json()["resourceType"] == "OperationOutcome"


def test_worklist_summary_gaps_and_caseload_endpoints(dev, client, uid):
    case = CASES["follow-up"](client, uid)
    requests.post(f"{dev.url}/api/v1/workflows/follow-up", json=case.payload, timeout=30).raise_for_status()
    rows = requests.get(
        f"{dev.url}/api/v1/worklist", params={"owner": case.payload["owner"]}, timeout=30
    ).json()
    assert [r["what"] for r in rows] == ["Follow up"]
    patient_id = case.payload["patient"].split("/")[1]
    summary = requests.get(f"{dev.url}/api/v1/patients/{patient_id}/summary", timeout=30).json()
    assert [t["what"] for t in summary["open_tasks"]] == ["Fulfil referral: Diabetes education", "Follow up"]
    gaps = requests.get(f"{dev.url}/api/v1/gaps", params={"patient": case.payload["patient"]}, timeout=30)
    assert gaps.status_code == 200 and isinstance(gaps.json(), list)
    caseload = requests.get(f"{dev.url}/api/v1/caseload", timeout=30)
    assert caseload.status_code == 200 and any(
        r["coordinator"] == case.payload["owner"] for r in caseload.json()
    )


def test_openapi_describes_every_workflow_from_its_schema(dev):
    document = requests.get(f"{dev.url}/api/v1/openapi.json", timeout=30).json()
    assert document["openapi"].startswith("3.1")
    from fhircare.workflows import WORKFLOWS

    for name in WORKFLOWS:
        body = document["paths"][f"/api/v1/workflows/{name}"]["post"]["requestBody"]
        assert (
            body["content"]["application/json"]["schema"]["$ref"] == f"#/components/schemas/workflow-{name}"
        )
    assert document["components"]["schemas"]["workflow-refer"]["required"][0] == "patient"
    # every GET route the API serves is described
    for path in ("worklist", "gaps", "caseload", "authorizations", "patients/{patient_id}/summary"):
        assert "get" in document["paths"][f"/api/v1/{path}"], path


def test_authorizations_endpoint_shows_the_payers_answer(dev, client, uid):
    from tests.integration.test_prior_auth_decision import _pas_response
    from tests.support.cases import make

    case = CASES["prior-auth"](client, uid)
    answer = requests.post(f"{dev.url}/api/v1/workflows/prior-auth", json=case.payload, timeout=30)
    assert answer.status_code == 201, answer.text
    claim = next(r for r in answer.json()["written"] if r.startswith("Claim/"))
    response = make(client, _pas_response(case.payload["patient"], claim, "A3"))
    rows = requests.get(
        f"{dev.url}/api/v1/authorizations", params={"patient": case.payload["patient"]}, timeout=30
    ).json()
    assert [(r["claim"], r["decision"], r["claim_response"], r["recorded"]) for r in rows] == [
        (claim, "denied", response, False)
    ]


def test_health_and_readiness(dev, fhir_server):
    assert requests.get(f"{dev.url}/healthz", timeout=30).json() == {"status": "ok"}
    assert requests.get(f"{dev.url}/readyz", timeout=30).status_code == 200
    with Sidecar(Settings(base_url="http://127.0.0.1:9/fhir", retries=0)) as down:
        assert requests.get(f"{down.url}/readyz", timeout=30).status_code == 503


def test_unsafe_setups_refuse_to_start():
    from fhircare.errors import ConfigurationError
    from fhircare.web import create_app

    with pytest.raises(ConfigurationError, match="SECRET_KEY"):
        create_app(Settings(auth_mode="smart"))
    with pytest.raises(ConfigurationError, match="loopback"):
        create_app(Settings(secret_key=SECRET), host="0.0.0.0")
    with pytest.raises(ConfigurationError, match="SMART mode needs"):
        create_app(Settings(auth_mode="smart", secret_key=SECRET))


def test_pass_through_mode_forwards_the_callers_bearer_token(fhir_server, client, uid):
    auth = SmartAuthServer(fhir_server.base_url).start()
    try:
        auth.register(Client("gateway", ["http://127.0.0.1/cb"]))
        from tests.integration.smart_server import Issued

        auth.tokens["gateway-token"] = Issued("gateway-token", None, "gateway", "user/*.cruds", None, 4e9)
        with Sidecar(Settings(base_url=auth.iss, auth_mode="passthrough", secret_key=SECRET)) as gateway:
            case = CASES["refer"](client, uid)
            assert (
                requests.post(
                    f"{gateway.url}/api/v1/workflows/refer", json=case.payload, timeout=30
                ).status_code
                == 401
            )
            ok = requests.post(
                f"{gateway.url}/api/v1/workflows/refer",
                json=case.payload,
                headers={"Authorization": "Bearer gateway-token"},
                timeout=30,
            )
            assert ok.status_code == 201
            assert set(auth.seen_tokens) == {"gateway-token"}
    finally:
        auth.stop()


@pytest.mark.parametrize("algorithm", ["RS384", "ES384"])
def test_backend_services_get_a_token_with_a_private_key_jwt(fhir_server, algorithm):
    key = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if algorithm == "RS384"
        else ec.generate_private_key(ec.SECP384R1())
    )
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    auth = SmartAuthServer(fhir_server.base_url).start()
    try:
        auth.register(
            Client(
                "system-1",
                [],
                public_key_pem=public_pem,
                grant_types=("client_credentials",),
                auth_method="client_assertion_jwt",
            )
        )
        backend = BackendServicesAuth(f"{auth.base}/token", "system-1", private_pem, algorithm=algorithm)
        with FhirClient(auth.iss, auth=backend) as system:
            system.search("Patient", {"_count": 1}).first()
            system.search("Task", {"_count": 1}).first()
        assert auth.grants_used == ["client_credentials"]  # one token, cached for both calls
        assert len(auth.seen_tokens) == 2 and len(set(auth.seen_tokens)) == 1
        wrong = (
            rsa.generate_private_key(public_exponent=65537, key_size=2048)
            if algorithm == "RS384"
            else ec.generate_private_key(ec.SECP384R1())
        )
        wrong_pem = wrong.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        with pytest.raises(Unauthorized):
            BackendServicesAuth(f"{auth.base}/token", "system-1", wrong_pem, algorithm=algorithm).token()
    finally:
        auth.stop()
