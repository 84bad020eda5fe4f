"""Who a change is recorded as (fhircare/web/actors.py): in a SMART session with a fhirUser the actor IS
that user, on every route that runs a workflow (the API's transition and workflow routes, the task's
page, the worklist's buttons, the generated forms); a session whose token names no user writes nothing
and has no "I am" choice; a backend caller (system scopes) still names the coordinator it acts for, and
development mode keeps its choice. Real sidecars over HTTP, the SMART server of tests/security, both
FHIR servers; the server is read back after every refusal."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests

from fhircare.fhir import FhirClient
from fhircare.settings import Settings
from fhircare.workflows import run
from tests.integration.sidecar_harness import Sidecar
from tests.security.conftest import (  # noqa: F401 - the attack suite's SMART server and sidecar
    auth,
    csrf_of,
    login,
    sidecar,
    smart_sidecar,
    snapshot,
)
from tests.support.backend import backend_settings, caller_token
from tests.support.cases import basics, make, referral_payload


def _case(client: FhirClient, uid: str) -> tuple[dict[str, str], str, str]:
    """(the people, a referral's Task, a colleague of the coordinator)."""
    b = basics(client, uid)
    task = run("refer", referral_payload(b, uid), client).written[1]
    colleague = make(client, {"resourceType": "Practitioner", "name": [{"family": f"Colleague{uid}"}]})
    return b, task, colleague


def _authors(client: FhirClient, task: str) -> list[str]:
    """Who the Provenance of each change to ``task`` names as its author, oldest first."""
    found = sorted(client.search("Provenance", {"target": task}), key=lambda p: str(p.get("recorded")))
    return [str(a.get("who", {}).get("reference")) for p in found for a in p.get("agent") or []]


def _expressions(answer: requests.Response) -> list[str]:
    return [e for issue in answer.json()["issue"] for e in issue.get("expression") or []]


@pytest.mark.parametrize("route", ["transition", "workflow"])
def test_a_coordinator_naming_a_colleague_as_the_actor_is_refused_at_actor_and_nothing_is_written(
    fhir_server: Any,
    client: FhirClient,
    uid: str,
    sidecar: Sidecar,  # noqa: F811 - the imported fixture
    auth: Any,  # noqa: F811 - the imported fixture
    route: str,
) -> None:
    b, task, colleague = _case(client, uid)
    auth.user = b["coordinator"]
    browser = login(sidecar, auth)
    before, counts = snapshot(client, [task]), fhir_server.resource_counts()
    body = {"to": "accepted", "actor": colleague}
    if route == "transition":
        answer = browser.post(f"{sidecar.url}/api/v1/tasks/{task.split('/')[1]}/transition", json=body)
    else:
        answer = browser.post(f"{sidecar.url}/api/v1/workflows/task", json={**body, "task": task})
    assert answer.status_code == 403, answer.text
    assert answer.json()["resourceType"] == "OperationOutcome"
    assert _expressions(answer) == ["$.actor"]
    assert snapshot(client, [task]) == before and fhir_server.resource_counts() == counts
    assert colleague not in _authors(client, task)


def test_the_signed_in_user_is_the_actor_named_or_not_and_their_own_role_is_accepted(
    client: FhirClient,
    uid: str,
    sidecar: Sidecar,  # noqa: F811 - the imported fixture
    auth: Any,  # noqa: F811 - the imported fixture
) -> None:
    b, task, colleague = _case(client, uid)
    me = b["coordinator"]
    my_role = make(client, {"resourceType": "PractitionerRole", "practitioner": {"reference": me}})
    their_role = make(client, {"resourceType": "PractitionerRole", "practitioner": {"reference": colleague}})
    auth.user = me
    browser = login(sidecar, auth)
    url = f"{sidecar.url}/api/v1/tasks/{task.split('/')[1]}/transition"
    # handing the task to the colleague names no actor: the one who hands it over is the author, not
    # the new owner (the task workflow's fallback)
    assert browser.post(url, json={"owner": colleague}).status_code == 201
    assert browser.post(url, json={"to": "accepted", "actor": me}).status_code == 201
    assert browser.post(url, json={"to": "in-progress", "actor": my_role}).status_code == 201
    refused = browser.post(url, json={"to": "on-hold", "reason": "waiting", "actor": their_role})
    assert refused.status_code == 403 and _expressions(refused) == ["$.actor"]
    assert _authors(client, task)[1:] == [me, me, my_role]  # [0]: the referral's own run
    assert client.read_reference(task)["status"] == "in-progress"


def test_the_pages_record_the_signed_in_user_even_from_a_form_naming_someone_else(
    client: FhirClient,
    uid: str,
    sidecar: Sidecar,  # noqa: F811 - the imported fixture
    auth: Any,  # noqa: F811 - the imported fixture
) -> None:
    """The worklist's button and the generated *Move a task* form, with an absolute fhirUser (as many
    EHRs send it): the page's actor is that user, read as ``Practitioner/id``; the form asks no actor
    and a posted one is not read."""
    b, task, colleague = _case(client, uid)
    me = b["coordinator"]
    auth.user = f"{auth.iss}/{me}"
    browser = login(sidecar, auth)
    patient_id = b["patient"].split("/")[1]
    token = csrf_of(browser, sidecar, f"/patients/{patient_id}")
    assert 'name="actor"' not in browser.get(f"{sidecar.url}/patients/{patient_id}/do/task").text
    accepted = browser.post(
        f"{sidecar.url}/tasks/{task.split('/')[1]}/action",
        data={"csrf": token, "action": "accept", "back": "/"},
        allow_redirects=False,
    )
    assert accepted.status_code == 303, accepted.text
    moved = browser.post(
        f"{sidecar.url}/patients/{patient_id}/do/task",
        data={"csrf": token, "task": task, "to": "in-progress", "actor": colleague},
        allow_redirects=False,
    )
    assert moved.status_code in (200, 303), moved.text[:500]
    assert _authors(client, task)[1:] == [me, me]
    assert client.read_reference(task)["status"] == "in-progress"


def test_a_session_whose_token_names_no_user_has_no_i_am_choice_and_writes_nothing(
    fhir_server: Any,
    client: FhirClient,
    uid: str,
    sidecar: Sidecar,  # noqa: F811 - the imported fixture
    auth: Any,  # noqa: F811 - the imported fixture
) -> None:
    b, task, colleague = _case(client, uid)
    auth.user = None
    browser = login(sidecar, auth)
    patient_id = b["patient"].split("/")[1]
    page = browser.get(f"{sidecar.url}/patients/{patient_id}").text
    assert "no fhirUser" in page and "read only" in page and "I am" not in page
    token = csrf_of(browser, sidecar, f"/patients/{patient_id}")
    assert browser.get(f"{sidecar.url}/me", params={"q": "Colleague"}).status_code == 404
    chosen = browser.post(f"{sidecar.url}/me", data={"csrf": token, "me": colleague}, allow_redirects=False)
    assert chosen.status_code == 404
    before, counts = snapshot(client, [task]), fhir_server.resource_counts()
    button = browser.post(
        f"{sidecar.url}/tasks/{task.split('/')[1]}/action",
        data={"csrf": token, "action": "accept", "back": "/"},
        allow_redirects=False,
    )
    api = browser.post(f"{sidecar.url}/api/v1/tasks/{task.split('/')[1]}/transition", json={"to": "accepted"})
    assert button.status_code == 403 and api.status_code == 403, (button.text, api.text)
    assert "fhirUser" in api.json()["issue"][0]["diagnostics"]
    assert snapshot(client, [task]) == before and fhir_server.resource_counts() == counts


def test_a_backend_caller_names_the_coordinator_it_acts_for(
    client: FhirClient,
    uid: str,
    auth: Any,  # noqa: F811 - the imported fixture
    tmp_path: Path,
) -> None:
    """System scopes, no user: the integration says whom it acts for, and the record names them."""
    b, task, colleague = _case(client, uid)
    settings, caller_private = backend_settings(auth, tmp_path, "system-actor")
    token = caller_token(caller_private, "system/*.cruds")
    with Sidecar(settings) as backend:
        answer = requests.post(
            f"{backend.url}/api/v1/tasks/{task.split('/')[1]}/transition",
            json={"to": "accepted", "actor": colleague},
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
        )
        assert answer.status_code == 201, answer.text
        assert requests.get(f"{backend.url}/me", timeout=30).status_code in (401, 404)
    assert _authors(client, task)[1:] == [colleague]


def test_development_mode_keeps_the_i_am_choice(fhir_server: Any, client: FhirClient, uid: str) -> None:
    b, task, colleague = _case(client, uid)
    with Sidecar(Settings(base_url=fhir_server.base_url)) as dev:
        browser = requests.Session()
        patient_id = b["patient"].split("/")[1]
        token = csrf_of(browser, dev, f"/patients/{patient_id}")
        assert "Development mode: I am" in browser.get(f"{dev.url}/").text
        chosen = browser.post(f"{dev.url}/me", data={"csrf": token, "me": colleague}, allow_redirects=False)
        assert chosen.status_code == 303
        accepted = browser.post(
            f"{dev.url}/tasks/{task.split('/')[1]}/action",
            data={"csrf": token, "action": "accept", "back": "/"},
            allow_redirects=False,
        )
        assert accepted.status_code == 303
    assert _authors(client, task)[1:] == [colleague]
