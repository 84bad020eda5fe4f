"""Issues 21 item 6 and 22 item 3 in Chromium, at 1280 and 390 px, on both partner pairs: a coordinator
opens the task page of a referral sent to a partner, finds no status to set but the partner's status and
when it was last synced, is refused at the reason field when cancelling without one (nothing written),
then cancels with a reason; both servers are read afterwards."""

from __future__ import annotations

import pytest

from fhircare.exchange import send, sync_once, work
from fhircare.settings import Settings
from tests.acceptance.test_browser import ARGS, CHROMIUM
from tests.acceptance.test_browser_morning import check_accessibility, fits
from tests.exchange import conftest as two_organizations
from tests.exchange.conftest import World
from tests.integration.sidecar_harness import Sidecar

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="Debian chromium is not installed (scripts/system-deps.sh installs it as root)",
)
# the exchange's fixtures: our server, the partner's (embedded or Medplum's router) behind the fault proxy
our_server = two_organizations.our_server
partner_server = two_organizations.partner_server
proxy = two_organizations.proxy
world = two_organizations.world


@pytest.mark.parametrize("width", (1280, 390))
def test_cancel_a_sent_referral_from_its_page(world: World, width: int) -> None:
    from playwright.sync_api import sync_playwright

    task_id, request_id = world.refer()
    send(world.exchange, task_id)
    work(world.theirs, world.remote_of(task_id)["id"], "accepted")
    sync_once(world.exchange, world.partner)
    family = world.ours.read_reference(world.patient)["name"][0]["family"]
    settings = Settings(base_url=world.ours.base_url, partners_file=world.partners_file, retries=1)
    with Sidecar(settings) as sidecar, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page(viewport={"width": width, "height": 900})
        page.goto(f"{sidecar.url}/patients/{world.patient.split('/')[1]}/tasks/{task_id}")
        status = page.locator("section[aria-labelledby='status-h']")
        assert status.get_by_role("radio").count() == 0
        assert "their organization sets its status" in status.inner_text()
        assert "partner: accepted · synced" in status.inner_text()
        check_accessibility(page, "a sent referral's task page")
        fits(page, f"a sent referral's task page at {width}px")

        page.get_by_role("button", name="Cancel the referral").click()
        page.wait_for_load_state()
        assert "Say why the referral is cancelled" in page.locator("#cancel_reason-err").inner_text()
        assert page.get_by_role("alert").first.inner_text().startswith("Not done")
        assert world.remote_of(task_id)["status"] == "accepted"
        assert world.ours.read("Task", task_id)["status"] == "accepted"
        check_accessibility(page, "a cancel refused at its reason")

        page.get_by_label("Why cancel the referral", exact=False).fill("the patient moved away")
        page.get_by_role("button", name="Cancel the referral").click()
        page.wait_for_load_state()
        banner = page.locator("p.flash[role='status']").inner_text()
        assert "Referral cancelled on both sides" in banner and family in banner
        assert page.get_by_role("button", name="Cancel the referral").count() == 0
        fits(page, f"a cancelled referral's task page at {width}px")
        browser.close()
    assert world.remote_of(task_id)["status"] == "cancelled"
    assert world.ours.read("Task", task_id)["status"] == "cancelled"
    assert world.ours.read("ServiceRequest", request_id)["status"] == "revoked"
