"""SMART App Launch end to end over real HTTP: an Authlib authorization server, the sidecar, the FHIR server."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from fhircare.server.launcher import free_port
from tests.integration.sidecar_harness import Sidecar, smart_settings
from tests.integration.smart_server import Client, SmartAuthServer
from tests.support.cases import CASES


@pytest.fixture()
def auth(fhir_server) -> Iterator[SmartAuthServer]:
    server = SmartAuthServer(fhir_server.base_url).start()
    yield server
    server.stop()


@pytest.fixture()
def sidecar(auth) -> Iterator[Sidecar]:
    port = free_port()
    auth.register(Client("fhircare-test", [f"http://127.0.0.1:{port}/callback"]))
    with Sidecar(smart_settings(auth.iss, port), port) as running:
        yield running


def login(sidecar: Sidecar, auth: SmartAuthServer, launch: str | None = "ehr-launch-1") -> requests.Session:
    browser = requests.Session()
    params = {"iss": auth.iss, **({"launch": launch} if launch else {})}
    answer = browser.get(f"{sidecar.url}/launch", params=params, allow_redirects=True, timeout=30)
    assert answer.history, "the launch did not redirect"
    assert answer.history[-1].headers["Location"] == "/"  # back home after the callback
    return browser


def test_ehr_launch_signs_in_with_pkce_and_the_fhir_calls_carry_the_users_token(sidecar, auth, client, uid):
    browser = login(sidecar, auth)

    challenge, method = auth.challenges[-1]
    assert method == "S256" and len(challenge) == 43
    assert auth.grants_used == ["authorization_code"]
    case = CASES["refer"](client, uid)
    answer = browser.post(f"{sidecar.url}/api/v1/workflows/refer", json=case.payload, timeout=30)
    assert answer.status_code == 201, answer.text
    issued = next(iter(auth.tokens))
    assert auth.seen_tokens and set(auth.seen_tokens) == {issued}


def test_the_browser_holds_only_an_opaque_httponly_samesite_cookie(sidecar, auth):
    browser = requests.Session()
    first = browser.get(
        f"{sidecar.url}/launch", params={"iss": auth.iss, "launch": "x"}, allow_redirects=False, timeout=30
    )
    authorize = browser.get(first.headers["Location"], allow_redirects=False, timeout=30)
    callback = browser.get(authorize.headers["Location"], allow_redirects=False, timeout=30)
    cookie = callback.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    value = cookie.split(";", 1)[0].split("=", 1)[1]
    issued = next(iter(auth.tokens.values()))
    assert value not in (issued.access_token, issued.refresh_token) and issued.access_token not in cookie


def test_standalone_launch_asks_for_patient_context_and_works(sidecar, auth, client, uid):
    browser = requests.Session()
    first = browser.get(f"{sidecar.url}/launch", allow_redirects=False, timeout=30)
    query = parse_qs(urlsplit(first.headers["Location"]).query)
    assert "launch" not in query and "launch/patient" in query["scope"][0].split()
    assert query["aud"] == [auth.iss] and query["code_challenge_method"] == ["S256"]
    browser.get(first.headers["Location"], allow_redirects=True, timeout=30)
    patient = CASES["refer"](client, uid).payload["patient"]
    assert (
        browser.get(f"{sidecar.url}/api/v1/patients/{patient.split('/')[1]}/summary", timeout=30).status_code
        == 200
    )


def test_an_issuer_off_the_allow_list_is_refused_without_a_redirect(sidecar):
    answer = requests.get(
        f"{sidecar.url}/launch",
        params={"iss": "http://evil.example/fhir", "launch": "x"},
        allow_redirects=False,
        timeout=30,
    )
    assert answer.status_code == 422 and "Location" not in answer.headers
    assert answer.json()["resourceType"] == "OperationOutcome"


def test_a_callback_with_an_unknown_or_replayed_state_is_refused(sidecar, auth):
    assert (
        requests.get(
            f"{sidecar.url}/callback", params={"state": "forged", "code": "x"}, timeout=30
        ).status_code
        == 422
    )
    browser = requests.Session()
    first = browser.get(
        f"{sidecar.url}/launch", params={"iss": auth.iss, "launch": "x"}, allow_redirects=False, timeout=30
    )
    authorize = browser.get(first.headers["Location"], allow_redirects=False, timeout=30)
    callback_url = authorize.headers["Location"]
    assert browser.get(callback_url, allow_redirects=False, timeout=30).status_code == 302
    assert requests.get(callback_url, allow_redirects=False, timeout=30).status_code == 422  # state used once


def test_an_expiring_token_is_refreshed_before_the_fhir_call(sidecar, auth, client, uid):
    auth.token_lifetime = 5  # inside the sidecar's 30-second margin: every request refreshes first
    browser = login(sidecar, auth)
    patient = CASES["refer"](client, uid).payload["patient"]
    refreshes = auth.grants_used.count("refresh_token")
    answer = browser.get(f"{sidecar.url}/api/v1/patients/{patient.split('/')[1]}/summary", timeout=30)
    assert answer.status_code == 200
    assert auth.grants_used.count("refresh_token") == refreshes + 1
    newest = list(auth.tokens)[-1]
    assert auth.seen_tokens[-1] == newest  # the FHIR call carried the new token
    assert auth.refresh_tokens[
        auth.tokens[list(auth.tokens)[-2]].refresh_token
    ].revoked  # the old refresh token is spent


def test_a_token_without_create_scopes_gets_403_and_nothing_is_written(
    sidecar, auth, client, fhir_server, uid
):
    auth.grant_scope = "launch openid user/Task.rs user/ServiceRequest.rs user/Patient.rs"
    browser = login(sidecar, auth)
    case = CASES["refer"](client, uid)
    counts = fhir_server.resource_counts()
    answer = browser.post(f"{sidecar.url}/api/v1/workflows/refer", json=case.payload, timeout=30)
    assert answer.status_code == 403 and answer.json()["issue"][0]["code"] == "forbidden"
    assert fhir_server.resource_counts() == counts


def test_v1_write_scopes_allow_the_write(sidecar, auth, client, uid):
    auth.grant_scope = (
        "launch openid user/ServiceRequest.write user/Task.write user/CarePlan.write user/Provenance.write"
    )
    browser = login(sidecar, auth)
    case = CASES["refer"](client, uid)
    assert (
        browser.post(f"{sidecar.url}/api/v1/workflows/refer", json=case.payload, timeout=30).status_code
        == 201
    )


def test_v2_update_scopes_are_what_a_task_change_needs(sidecar, auth, client, uid):
    """A task change creates only its Provenance and updates the Task (and the referral that follows)."""
    case = CASES["task"](client, uid).payload
    task = case["task"]
    task_id = task.split("/")[1]
    auth.user = case["actor"]  # the signed-in coordinator is the change's actor: one on the server
    auth.grant_scope = "launch openid user/Task.c user/ServiceRequest.c user/Provenance.c"  # no .u
    refused = login(sidecar, auth).post(
        f"{sidecar.url}/api/v1/tasks/{task_id}/transition", json={"to": "accepted"}, timeout=30
    )
    assert refused.status_code == 403
    assert "'u' on ServiceRequest, Task" in refused.json()["issue"][0]["diagnostics"]
    assert client.read_reference(task)["status"] == "requested"

    auth.grant_scope = "launch openid user/Task.ru user/ServiceRequest.u user/Provenance.c"  # no Task.c
    allowed = login(sidecar, auth).post(
        f"{sidecar.url}/api/v1/tasks/{task_id}/transition", json={"to": "accepted"}, timeout=30
    )
    assert allowed.status_code == 201, allowed.text
    assert client.read_reference(task)["status"] == "accepted"


def test_a_patient_launch_session_stays_inside_its_patient(sidecar, auth, client, uid):
    own = CASES["refer"](client, uid).payload
    other = CASES["refer"](client, uid + "b").payload
    auth.grant_patient = own["patient"].split("/")[1]
    browser = login(sidecar, auth)
    assert browser.post(f"{sidecar.url}/api/v1/workflows/refer", json=other, timeout=30).status_code == 403
    assert (
        browser.get(
            f"{sidecar.url}/api/v1/patients/{other['patient'].split('/')[1]}/summary", timeout=30
        ).status_code
        == 403
    )
    assert (
        browser.get(
            f"{sidecar.url}/api/v1/patients/{own['patient'].split('/')[1]}/summary", timeout=30
        ).status_code
        == 200
    )
    assert browser.post(f"{sidecar.url}/api/v1/workflows/refer", json=own, timeout=30).status_code == 201


def test_without_a_session_the_api_answers_401(sidecar):
    answer = requests.get(f"{sidecar.url}/api/v1/worklist", timeout=30)
    assert answer.status_code == 401 and answer.json()["resourceType"] == "OperationOutcome"
