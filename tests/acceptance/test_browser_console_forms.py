"""Issue 22, item 8: the forms no browser test used to submit (assess, care plan, education, transition)
are filled and sent in Chromium at 1280 and 390 px, pass axe-core, and the FHIR server holds what they
said."""

from __future__ import annotations

from typing import Any

import pytest

from fhircare.settings import Settings
from tests.acceptance.test_browser import ARGS, CHROMIUM
from tests.acceptance.test_browser_morning import check_accessibility, fits, pick
from tests.integration.sidecar_harness import Sidecar
from tests.integration.test_console_patients import letters
from tests.support.cases import basics, make
from tests.support.console import i_am

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="Debian chromium is not installed (scripts/system-deps.sh installs it as root)",
)


def _send(page: Any, title: str) -> None:
    check_accessibility(page, f"the {title} form")
    page.get_by_role("button", name=title).click()
    page.wait_for_load_state()
    problems = [t for t in page.locator(".problem, .field-error").all_inner_texts() if t.strip()]
    assert problems == [], problems
    assert page.get_by_role("status").inner_text().startswith(f"{title}: done")


@pytest.mark.parametrize("width", (1280, 390))
def test_assess_care_plan_educate_and_transition_go_through_the_page(fhir_server, client, uid, width):
    from playwright.sync_api import sync_playwright

    b = basics(client, uid)
    clinic = make(client, {"resourceType": "Organization", "name": f"Clinic{letters(uid)}"})
    pid, patient = b["patient"].split("/")[1], b["patient"]
    with Sidecar(Settings(base_url=fhir_server.base_url)) as sidecar, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page(viewport={"width": width, "height": 900})
        page.goto(f"{sidecar.url}/")
        i_am(page, b["coordinator"], "Coord")

        page.goto(f"{sidecar.url}/patients/{pid}/do/assess")
        page.locator("[name='goals[0].description']").fill(f"Walk daily {uid}")
        fits(page, f"assess form at {width}px")
        _send(page, "Record an assessment")

        page.goto(f"{sidecar.url}/patients/{pid}/do/care-plan")
        page.locator("[name='care_plan']").select_option("")  # a new plan, not a revision
        page.locator("[name='title']").fill(f"Plan {uid}")
        page.locator("[name='goals[0].description']").fill(f"HbA1c below 7.5% {uid}")
        fits(page, f"care-plan form at {width}px")
        _send(page, "Change the care plan")

        page.goto(f"{sidecar.url}/patients/{pid}/do/educate")
        page.locator("[name='recipients']").select_option([patient])
        page.locator("[name='topic']").fill(f"Foot care {uid}")
        page.locator("[name='content']").fill(f"Check both feet every evening {uid}")
        fits(page, f"educate form at {width}px")
        _send(page, "Send education")

        page.goto(f"{sidecar.url}/patients/{pid}/do/transition")
        pick(page, "receiving_provider", f"Clinic{letters(uid)}", clinic)
        page.locator("[name='summary']").fill(f"Discharged home {uid}")
        fits(page, f"transition form at {width}px")
        _send(page, "Discharge / transition of care")
        browser.close()

    goals = {g["description"]["text"] for g in client.search("Goal", {"patient": patient})}
    assert {f"Walk daily {uid}", f"HbA1c below 7.5% {uid}"} <= goals
    plans = list(client.search("CarePlan", {"subject": patient}))
    assert any(p.get("title") == f"Plan {uid}" for p in plans)
    taught = [c for c in client.search("Communication", {"patient": patient}) if f"evening {uid}" in str(c)]
    assert len(taught) == 1 and taught[0]["recipient"][0]["reference"] == patient
    follow_ups = list(client.search("Task", {"patient": patient}))
    assert any(t.get("owner", {}).get("reference") == b["coordinator"] for t in follow_ups)
    sent = list(client.search("Communication", {"recipient": clinic}))
    assert any(f"Discharged home {uid}" in str(c.get("payload")) for c in sent)
