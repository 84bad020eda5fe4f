"""Issue 12, items 3-7, 14-16: attacks on the SMART sidecar's sessions, scopes, pages and launch."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from fhircare.workflows import run
from tests.integration.test_prior_auth_decision import _pas_response
from tests.security.conftest import csrf_of, login, snapshot
from tests.support.cases import make
from tests.support.clock import day

READ_ALL = "user/*.rs"


# ---- item 3: the Task the workflow resolves, not the one the form names ----------------------


def test_record_answer_smuggling_another_patients_task_behind_a_conditional_is_refused(
    sidecar, auth, client, fhir_server, records
):
    a, b = records
    answer_for_b = make(client, _pas_response(b.patient, b.claim, "A1"))
    smuggled = f"Task?_id={b.prior_auth_task.split('/')[1]}&x=y/{a.prior_auth_task.split('/')[1]}"
    # the one signing in is a practitioner the server knows, so the run can name them as its actor:
    # with an unknown fhirUser the run fails on that reference alone and proves nothing
    auth.user = a.basics["coordinator"]
    browser = login(sidecar, auth, patient=a.patient)
    versions = snapshot(client, [b.prior_auth_task])
    answer = browser.post(
        f"{sidecar.url}/authorizations/record",
        data={
            "task": smuggled,
            "claim_response": answer_for_b,
            # a page that lists one of A's Tasks carries the form token in every version of the pages
            "csrf": csrf_of(
                browser, sidecar, f"/?owner={client.read_reference(a.task)['owner']['reference']}"
            ),
        },
        allow_redirects=False,
        timeout=30,
    )
    # B's Task first: the form answers 303 whether or not the run went through
    assert (
        client.read_reference(b.prior_auth_task)["status"] == "ready"
    )  # as the prior-auth workflow created it: untouched
    assert snapshot(client, [b.prior_auth_task]) == versions
    assert answer.status_code == 403


# ---- item 4: patient/ scopes without a patient ------------------------------------------------


def test_patient_scopes_without_a_patient_in_the_token_grant_nothing(sidecar, auth, records):
    a, _ = records
    browser = login(sidecar, auth, scope="launch openid patient/*.cruds")  # no patient in the answer
    assert browser.get(f"{sidecar.url}/api/v1/worklist", timeout=30).status_code == 403
    assert browser.get(f"{sidecar.url}/api/v1/caseload", timeout=30).status_code == 403
    assert browser.get(f"{sidecar.url}/", timeout=30).status_code == 403
    summary = f"{sidecar.url}/api/v1/patients/{a.patient.split('/')[1]}/summary"
    assert browser.get(summary, timeout=30).status_code == 403


# ---- item 5: one policy for both faces --------------------------------------------------------


def test_every_route_of_both_faces_has_an_access_rule(sidecar):
    from fhircare.web.policy import POLICY

    endpoints = {rule.endpoint for rule in sidecar.app.url_map.iter_rules()}
    assert endpoints - set(POLICY) == set()


def test_a_task_read_only_token_sees_no_names_on_either_face(sidecar, auth, records):
    """With only ``user/Task.rs`` every view that shows patients or coordinators is 403, page and API alike."""
    a, _ = records
    browser = login(sidecar, auth, scope="launch openid user/Task.rs")
    pid = a.patient.split("/")[1]
    for api_path, page_path in [
        ("/api/v1/worklist", "/"),
        (f"/api/v1/patients/{pid}/summary", f"/patients/{pid}"),
        ("/api/v1/caseload", "/caseload"),
        ("/api/v1/gaps", "/gaps"),
        ("/api/v1/authorizations", "/authorizations"),
    ]:
        api, page = (browser.get(f"{sidecar.url}{p}", timeout=30) for p in (api_path, page_path))
        assert (api.status_code, page.status_code) == (403, 403), (api_path, page_path)
        assert "Alpha" not in page.text


def test_a_patient_session_gets_no_caseload_on_either_face(sidecar, auth, records):
    a, _ = records
    browser = login(sidecar, auth, patient=a.patient)
    assert browser.get(f"{sidecar.url}/api/v1/caseload", timeout=30).status_code == 403
    assert browser.get(f"{sidecar.url}/caseload", timeout=30).status_code == 403


def test_a_patient_session_asking_for_another_patient_on_any_view_is_refused(sidecar, auth, records):
    a, b = records
    browser = login(sidecar, auth, patient=a.patient)
    for path in (
        "/api/v1/worklist",
        "/api/v1/gaps",
        "/api/v1/authorizations",
        "/",
        "/gaps",
        "/authorizations",
    ):
        assert (
            browser.get(f"{sidecar.url}{path}", params={"patient": b.patient}, timeout=30).status_code == 403
        ), path


# ---- item 6: granular scopes ------------------------------------------------------------------


def test_a_granular_update_scope_is_not_widened_to_every_task(sidecar, auth, client, records):
    a, _ = records
    scope = "launch openid user/Task.rs user/Task.u?code=approve user/ServiceRequest.u user/Provenance.c"
    browser = login(sidecar, auth, scope=scope)
    versions = snapshot(client, [a.task])
    answer = browser.post(
        f"{sidecar.url}/api/v1/tasks/{a.task.split('/')[1]}/transition", json={"to": "accepted"}, timeout=30
    )
    assert answer.status_code == 403
    assert snapshot(client, [a.task]) == versions


# ---- item 7: login CSRF -----------------------------------------------------------------------


def test_an_attackers_unfinished_callback_does_not_sign_the_victim_in(sidecar, auth):
    attacker = requests.Session()
    first = attacker.get(
        f"{sidecar.url}/launch", params={"iss": auth.iss, "launch": "x"}, allow_redirects=False, timeout=30
    )
    authorize = attacker.get(first.headers["Location"], allow_redirects=False, timeout=30)
    trap = authorize.headers["Location"]  # the attacker stops here and sends this link to the victim
    victim = requests.Session()
    answer = victim.get(trap, allow_redirects=False, timeout=30)
    assert answer.status_code == 422 and "fhircare_session" not in victim.cookies
    assert victim.get(f"{sidecar.url}/api/v1/worklist", timeout=30).status_code == 401


# ---- item 14: anonymous launches --------------------------------------------------------------


def test_a_flood_of_anonymous_launches_stays_bounded_and_discovers_once(sidecar, auth):
    from fhircare.web.sessions import MAX_PENDING_LAUNCHES

    before = auth.discovery_hits
    for _ in range(400):
        answer = requests.get(
            f"{sidecar.url}/launch", params={"iss": auth.iss}, allow_redirects=False, timeout=30
        )
        assert answer.status_code == 302
    pending = sidecar.app.extensions["fhircare.sessions"].launches
    assert len(pending) <= MAX_PENDING_LAUNCHES
    assert auth.discovery_hits - before <= 1


# ---- item 15: logout --------------------------------------------------------------------------


def test_a_cross_site_logout_without_the_csrf_token_is_refused(sidecar, auth):
    browser = login(sidecar, auth)
    assert browser.post(f"{sidecar.url}/logout", allow_redirects=False, timeout=30).status_code == 400
    assert browser.get(f"{sidecar.url}/api/v1/caseload", timeout=30).status_code == 200  # still signed in


def test_logout_revokes_the_tokens_at_the_authorization_server(sidecar, auth):
    browser = login(sidecar, auth)
    issued = next(iter(auth.tokens.values()))
    answer = browser.post(
        f"{sidecar.url}/logout", data={"csrf": csrf_of(browser, sidecar)}, allow_redirects=False, timeout=30
    )
    assert answer.status_code == 302
    assert issued.revoked and set(auth.revoked) == {issued.access_token, issued.refresh_token}
    assert browser.get(f"{sidecar.url}/api/v1/caseload", timeout=30).status_code == 401


# ---- item 16: scopes, pins, stored sessions ---------------------------------------------------


@pytest.mark.parametrize(
    "granted", ["launch openid user/*.dc", "launch openid system/*.cruds", "launch user/Task.xyz"]
)
def test_malformed_or_system_scopes_in_a_user_launch_refuse_the_sign_in(sidecar, auth, granted):
    auth.grant_scope = granted
    browser = requests.Session()
    answer = browser.get(f"{sidecar.url}/launch", params={"iss": auth.iss, "launch": "x"}, timeout=30)
    assert answer.status_code == 401 and "fhircare_session" not in browser.cookies


def test_a_pinned_token_endpoint_refuses_an_issuer_that_names_another(smart_sidecar, auth):
    pinned = smart_sidecar(smart_token_endpoints=((auth.iss, "https://token.example.org/token"),))
    answer = requests.get(f"{pinned.url}/launch", params={"iss": auth.iss}, allow_redirects=False, timeout=30)
    assert answer.status_code == 401 and "Location" not in answer.headers
    matching = smart_sidecar(smart_token_endpoints=((auth.iss, f"{auth.base}/token"),))
    ok = requests.get(f"{matching.url}/launch", params={"iss": auth.iss}, allow_redirects=False, timeout=30)
    assert ok.status_code == 302 and parse_qs(urlsplit(ok.headers["Location"]).query)[
        "code_challenge_method"
    ] == ["S256"]


def test_readiness_never_names_the_fhir_base(fhir_server):
    from fhircare.settings import Settings
    from tests.integration.sidecar_harness import Sidecar

    with Sidecar(Settings(base_url="http://127.0.0.1:9/secret-fhir", retries=0)) as down:
        answer = requests.get(f"{down.url}/readyz", timeout=30)
    assert answer.status_code == 503
    assert "127.0.0.1:9" not in answer.text and "secret-fhir" not in answer.text


def test_an_own_patient_run_still_works_in_a_patient_session(sidecar, auth, client, records, uid):
    """The guard refuses only what is another patient's: A's own follow-up, with A's own references, is 201."""
    a, _ = records
    payload = {
        "patient": a.patient,
        "about": a.referral,
        "owner": a.basics["coordinator"],
        "due": day(6),
        "note": uid,
    }
    answer = login(sidecar, auth, patient=a.patient).post(
        f"{sidecar.url}/api/v1/workflows/follow-up", json=payload, timeout=30
    )
    assert answer.status_code == 201, answer.text
    assert run("follow-up", payload, client).repeated
