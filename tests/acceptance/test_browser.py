"""A coordinator in a real browser (Debian's Chromium driven by Playwright): signs in through the SMART
launch, opens the worklist, completes a task, records a payer's answer to a prior authorization, and
both Tasks are finished on the FHIR server."""

from __future__ import annotations

from pathlib import Path

import pytest

from fhircare.server.launcher import free_port
from fhircare.workflows import run
from tests.integration.sidecar_harness import Sidecar, smart_settings
from tests.integration.smart_server import Client, SmartAuthServer
from tests.integration.test_prior_auth_decision import _pas_response
from tests.support.cases import make, prior_auth_case
from tests.support.clock import at

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="Debian chromium is not installed (scripts/system-deps.sh installs it as root)",
)
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def test_sign_in_open_the_worklist_and_complete_a_task(fhir_server, client, uid):
    from playwright.sync_api import sync_playwright

    me = make(client, {"resourceType": "Practitioner", "name": [{"family": "Rivera", "given": ["Jordan"]}]})
    patient = make(client, {"resourceType": "Patient", "name": [{"family": "Silva", "given": ["Ana"]}]})
    task = make(
        client,
        {
            "resourceType": "Task",
            "status": "in-progress",
            "intent": "order",
            "priority": "urgent",
            "description": f"Call Ana about her referral {uid}",
            "for": {"reference": patient},
            "owner": {"reference": me},
            "restriction": {"period": {"end": at(-330, "23:59:59")}},
        },
    )
    other = make(
        client,
        {
            "resourceType": "Task",
            "status": "requested",
            "intent": "order",
            "description": "Check coverage",
            "for": {"reference": patient},
            "owner": {"reference": me},
        },
    )
    request = prior_auth_case(client, uid).payload
    written = run("prior-auth", {**request, "provider": me}, client).written
    prior_auth = next(r for r in written if r.startswith("Task/"))
    claim = next(r for r in written if r.startswith("Claim/"))
    make(client, _pas_response(request["patient"], claim, "A3"))
    auth = SmartAuthServer(fhir_server.base_url).start()
    auth.user = me
    port = free_port()
    auth.register(Client("fhircare-test", [f"http://127.0.0.1:{port}/callback"]))
    try:
        with Sidecar(smart_settings(auth.iss, port), port) as sidecar, sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
            page = browser.new_page(viewport={"width": 1366, "height": 768})
            page.goto(f"{sidecar.url}/launch?iss={auth.iss}&launch=ehr-1")
            page.wait_for_url(f"{sidecar.url}/")
            assert page.get_by_role("heading", name="My worklist").is_visible()
            row = page.locator(f"tr[data-task='{task}']")
            assert "Ana Silva" in row.inner_text() and "overdue" in row.inner_text()
            assert page.locator(f"tr[data-task='{other}']").is_visible()
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "worklist.png"), full_page=True)
            # Complete asks what was done before it closes the task
            row.get_by_role("link", name="Complete").click()
            page.wait_for_load_state()
            assert page.locator("input[name='to'][value='completed']").is_checked()
            page.get_by_label("What was done (when completing)").fill("Reached Ana; referral discussed")
            page.get_by_role("button", name="Change the status").click()
            page.wait_for_load_state()
            assert page.get_by_role("status").inner_text().startswith("Task completed: ")
            page.goto(f"{sidecar.url}/")
            assert page.locator(f"tr[data-task='{task}']").count() == 0  # no longer open

            # the payer answered a prior authorization she asked for: she records it from the page
            page.get_by_role("link", name="Authorizations").click()
            page.wait_for_load_state()
            answered = page.locator(f"tr[data-task='{prior_auth}']")
            assert "Denied" in answered.inner_text()
            page.screenshot(path=str(ARTIFACTS / "authorizations.png"), full_page=True)
            answered.get_by_role("button", name="Record answer").click()
            page.wait_for_load_state()
            assert page.get_by_role("status").inner_text().startswith("Payer's answer recorded: ")
            assert page.locator(f"tr[data-task='{prior_auth}']").count() == 0  # finished: off the list
            browser.close()
        stored = client.read_reference(task)
        assert stored["status"] == "completed"
        assert stored["note"][-1]["text"] == "Reached Ana; referral discussed"
        decided = client.read_reference(prior_auth)
        assert decided["status"] == "completed"
        assert decided["businessStatus"]["coding"][0]["code"] == "denied"
        provenance = next(iter(client.search("Provenance", {"target": prior_auth})))
        assert provenance["agent"][0]["who"]["reference"] == me
        assert (ARTIFACTS / "worklist.png").stat().st_size > 10_000
    finally:
        auth.stop()


def test_a_form_post_without_the_csrf_token_is_refused(fhir_server, client):
    import requests

    from fhircare.settings import Settings

    task = make(client, {"resourceType": "Task", "status": "requested", "intent": "order"})
    with Sidecar(Settings(base_url=fhir_server.base_url)) as dev:
        answer = requests.post(
            f"{dev.url}/tasks/{task.split('/')[1]}/action", data={"action": "accept"}, timeout=30
        )
        assert answer.status_code == 400 and "CSRF" in answer.text
    assert client.read_reference(task)["status"] == "requested"
