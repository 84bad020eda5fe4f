"""Issue 22 item 5 in Chromium, at a laptop's 1280 px and a phone's 390 px: a coordinator completes a
referral's task with what was done, sees the banner naming the task and patient with Undo, clicks it,
and the page shows the task back in progress with the undo in its timeline. The FHIR server is read
independently afterwards: the Task in progress, its ServiceRequest active, one Provenance of the undo."""

from __future__ import annotations

from typing import Any

import pytest

from fhircare.settings import Settings
from fhircare.workflows import run
from tests.acceptance.test_browser import ARGS, CHROMIUM
from tests.acceptance.test_browser_morning import check_accessibility, fits
from tests.integration.sidecar_harness import Sidecar
from tests.support.cases import basics, referral_payload

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="Debian chromium is not installed (scripts/system-deps.sh installs it as root)",
)


def _in_progress_referral(client: Any, uid: str) -> dict[str, str]:
    b = basics(client, uid)
    written = run("refer", referral_payload(b, uid), client).written
    task = next(r for r in written if r.startswith("Task/"))
    for status in ("accepted", "in-progress"):
        run("task", {"task": task, "to": status, "actor": b["coordinator"]}, client)
    request = next(r for r in written if r.startswith("ServiceRequest/"))
    return {**b, "task": task, "request": request}


@pytest.mark.parametrize("width", (1280, 390))
def test_complete_with_an_outcome_then_undo_from_the_banner(fhir_server, client, uid, width):
    from playwright.sync_api import sync_playwright

    world = _in_progress_referral(client, uid)
    pid, tid = world["patient"].split("/")[1], world["task"].split("/")[1]
    with Sidecar(Settings(base_url=fhir_server.base_url)) as sidecar, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page(viewport={"width": width, "height": 900})
        page.goto(f"{sidecar.url}/")
        page.get_by_label("Development mode: I am").select_option(value=world["coordinator"])
        page.get_by_role("button", name="Use").click()
        page.wait_for_load_state()
        page.goto(f"{sidecar.url}/patients/{pid}/tasks/{tid}")
        page.locator("input[name='to'][value='completed']").check()
        page.get_by_label("What was done (when completing)").fill(f"Joined the class {uid}")
        page.get_by_role("button", name="Change the status").click()
        page.wait_for_load_state()

        banner = page.locator("[data-undo-banner]")
        words = banner.inner_text()
        assert words.startswith("Task completed:") and f"Case{uid}" in words and "until" in words
        assert page.locator("dd[data-status]").get_attribute("data-status") == "completed"
        assert page.get_by_role("button", name="Undo completion").is_visible()  # the page's own too
        check_accessibility(page, "completed task with its undo banner")
        fits(page, f"completed task with its undo banner at {width}px")
        box = banner.get_by_role("button", name="Undo", exact=True).bounding_box()
        assert box and box["height"] >= 44 and box["width"] >= 44

        banner.get_by_role("button", name="Undo", exact=True).click()
        page.wait_for_load_state()
        assert page.locator("dd[data-status]").get_attribute("data-status") == "in-progress"
        assert page.get_by_role("status").inner_text().startswith("Completion undone:")
        assert page.locator("[data-undo-banner]").count() == 0
        assert page.get_by_role("button", name="Undo completion").count() == 0
        assert "completion undone" in page.locator("table.timeline").inner_text()
        assert page.locator("input[name='to'][value='completed']").count() == 1  # it can be completed again
        check_accessibility(page, "task after the undo")
        fits(page, f"task after the undo at {width}px")
        browser.close()

    task = client.read_reference(world["task"])
    assert task["status"] == "in-progress" and "output" not in task
    assert client.read_reference(world["request"])["status"] == "active"
    undos = [
        p
        for p in client.search("Provenance", {"target": world["task"]})
        if any(r.get("text") == "undo completion" for r in p.get("reason") or [])
    ]
    assert len(undos) == 1 and undos[0]["agent"][0]["who"]["reference"] == world["coordinator"]
