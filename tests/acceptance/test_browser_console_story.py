"""Issue 22 in Chromium, at a laptop's 1280 px and a phone's 390 px: a coordinator finds a patient from the
header's search box and tells two of the same name apart; notes a task, puts it on hold with a reason,
resumes and completes it, and finds it again once closed; reads the patient's timeline and referrals.
Every page passes axe-core and fits its width; the FHIR server is read independently afterwards."""

from __future__ import annotations

from typing import Any

import pytest

from fhircare.settings import Settings
from fhircare.workflows import run
from tests.acceptance.test_browser import ARGS, CHROMIUM
from tests.acceptance.test_browser_morning import check_accessibility, fits
from tests.integration.sidecar_harness import Sidecar
from tests.integration.test_console_patients import born_years_ago, letters, patient
from tests.support.cases import basics, make, referral_payload
from tests.support.console import i_am

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


@pytest.mark.parametrize("width", WIDTHS)
def test_note_hold_resume_and_complete_a_task_then_find_it_closed(fhir_server, client, uid, width):
    from playwright.sync_api import sync_playwright

    b = basics(client, uid)
    task = next(r for r in run("refer", referral_payload(b, uid), client).written if r.startswith("Task/"))
    pid = b["patient"].split("/")[1]
    with Sidecar(Settings(base_url=fhir_server.base_url)) as sidecar, sync_playwright() as playwright:
        browser = _browser(playwright)
        page = browser.new_page(viewport={"width": width, "height": 900})
        page.goto(f"{sidecar.url}/")
        i_am(page, b["coordinator"], "Coord")
        page.goto(f"{sidecar.url}/patients/{pid}")
        page.locator(f"li[data-task='{task}'] a").first.click()
        page.wait_for_load_state()
        check_accessibility(page, "task page")
        fits(page, f"task page at {width}px")

        def status(to: str, reason: str = "", outcome: str = "") -> None:
            page.locator(f"input[name='to'][value='{to}']").check()
            if reason:
                page.get_by_label("Reason", exact=False).fill(reason)
            if outcome:
                page.get_by_label("What was done (when completing)").fill(outcome)
            page.get_by_role("button", name="Change the status").click()
            page.wait_for_load_state()

        page.get_by_label("Note (kept with your name", exact=False).fill(f"Called, no answer {uid}")
        page.get_by_role("button", name="Add the note").click()
        page.wait_for_load_state()
        assert page.get_by_role("status").inner_text().startswith("Note added to")
        assert f"Called, no answer {uid}" in page.locator("ol.notes").inner_text()
        status("accepted")
        status("in-progress")
        status("on-hold")  # no reason: refused at its field, nothing changed
        assert "Say why" in page.locator("#reason-err").inner_text()
        assert page.locator(".flash").count() == 0
        check_accessibility(page, "task page with an error")
        status("on-hold", reason=f"In hospital {uid}")
        assert f"In hospital {uid}" in page.locator("dd.status-reason").inner_text()
        status("in-progress")
        status("completed", outcome=f"Joined the class {uid}")
        assert page.locator("input[name='to']").count() == 0  # closed: no status form, still here
        assert f"Joined the class {uid}" in page.locator("dd.outcome").inner_text()
        timeline = page.locator("table.timeline").inner_text()
        assert "on-hold" in timeline and f"In hospital {uid}" in timeline
        check_accessibility(page, "closed task page")
        fits(page, f"closed task page at {width}px")

        # back on the patient page: the referral with its outcome, the closed task, the timeline
        page.locator("p.crumbs a").first.click()
        page.wait_for_load_state()
        referral = page.locator(f"tr[data-referral='{task}']").inner_text()
        assert "completed" in referral and f"Joined the class {uid}" in referral
        assert page.locator(f"#closed ~ ul li[data-task='{task}']").count() == 1
        story = page.locator("table.timeline tbody tr")
        assert story.count() == 7
        assert f"In hospital {uid}" in page.locator("table.timeline").inner_text()
        check_accessibility(page, "patient page with its story")
        fits(page, f"patient page with its story at {width}px")
        browser.close()
    stored = client.read_reference(task)
    assert stored["status"] == "completed"
    assert [n["text"] for n in stored["note"]].count(f"Called, no answer {uid}") == 1
    assert stored["note"][-1]["authorReference"]["reference"] == b["coordinator"]
    runs = list(client.search("Provenance", {"target": task}))
    assert len(runs) == 7  # the referral, the note and five moves: one run each


def test_on_a_phone_filters_fold_and_every_control_is_a_44_pixel_target(fhir_server, client, uid):
    from playwright.sync_api import sync_playwright

    b = basics(client, uid)
    run("refer", referral_payload(b, uid), client)
    with Sidecar(Settings(base_url=fhir_server.base_url)) as sidecar, sync_playwright() as playwright:
        browser = _browser(playwright)
        page = browser.new_page(viewport={"width": 390, "height": 844})
        page.goto(f"{sidecar.url}/?tab=team&patient={b['patient']}")
        fold = page.locator("details.fold")
        assert fold.evaluate("d => d.open") is False  # the rows come first on a phone
        assert page.locator("tr[data-task]").first.is_visible()
        fold.locator("summary").click()
        assert page.get_by_label("Status", exact=True).is_visible()
        small = page.evaluate(
            """() => Array.from(document.querySelectorAll(
                 'button, a.button, select, input:not([type=hidden]):not([type=checkbox]):not([type=radio]),'
                 + ' header nav a, details.fold > summary, .tabs a, .pager a'))
               .filter(e => e.offsetParent !== null)
               .map(e => [e.outerHTML.slice(0, 60), e.getBoundingClientRect()])
               .filter(([_, r]) => r.height < 44 || r.width < 44)
               .map(([html, r]) => `${html} ${Math.round(r.width)}x${Math.round(r.height)}`)"""
        )
        assert small == []
        check_accessibility(page, "worklist on a phone")
        fits(page, "worklist on a phone")
        wide = browser.new_page(viewport={"width": 1280, "height": 900})
        wide.goto(f"{sidecar.url}/?tab=team&patient={b['patient']}")
        assert wide.locator("details.fold").evaluate("d => d.open") is True
        assert wide.get_by_label("Status", exact=True).is_visible()
        browser.close()


@pytest.mark.parametrize("width", WIDTHS)
def test_enroll_a_new_patient_with_a_caregiver_from_the_page(fhir_server, client, uid, width):
    from playwright.sync_api import sync_playwright

    me = make(client, {"resourceType": "Practitioner", "name": [{"family": f"Rivera{letters(uid)}"}]})
    family = f"Okafor{letters(uid)}"
    with Sidecar(Settings(base_url=fhir_server.base_url)) as sidecar, sync_playwright() as playwright:
        browser = _browser(playwright)
        page = browser.new_page(viewport={"width": width, "height": 900})
        page.goto(f"{sidecar.url}/patients")
        page.get_by_role("link", name="New patient").click()
        page.wait_for_load_state()
        check_accessibility(page, "new patient form")
        fits(page, f"new patient form at {width}px")
        page.locator("[name='patient.identifier.value']").fill(f"NEW-{uid}")
        page.locator("[name='patient.name.family']").fill(family)
        page.locator("[name='patient.name.given']").fill("Ana")
        page.locator("[name='patient.birthDate']").fill(born_years_ago(58))
        page.locator("[name='patient.gender']").select_option("female")
        page.locator("[name='coordinator']").select_option(me)
        page.locator("[name='family[0].name']").fill(f"Rosa {family}")
        page.locator("[name='family[0].relationship']").select_option("DAU")
        page.get_by_role("button", name="New patient").click()
        page.wait_for_load_state()
        assert page.get_by_role("status").inner_text().startswith("Enroll (family, team): done for Ana")
        assert f"record number NEW-{uid}" in page.locator("p.identity").inner_text()
        check_accessibility(page, "the new patient's page")
        fits(page, f"the new patient's page at {width}px")
        browser.close()
    found = list(client.search("Patient", {"identifier": f"NEW-{uid}"}))
    assert len(found) == 1
    kin = list(client.search("RelatedPerson", {"patient": f"Patient/{found[0]['id']}"}))
    assert [k["name"][0]["family"] for k in kin] == [family]


def test_a_keyboard_user_skips_to_the_content_and_stacked_tables_keep_their_labels(fhir_server, client, uid):
    from playwright.sync_api import sync_playwright

    b = basics(client, uid)
    run("refer", referral_payload(b, uid), client)
    with Sidecar(Settings(base_url=fhir_server.base_url)) as sidecar, sync_playwright() as playwright:
        browser = _browser(playwright)
        page = browser.new_page(viewport={"width": 390, "height": 844})
        page.goto(f"{sidecar.url}/caseload")
        page.keyboard.press("Tab")
        skip = page.get_by_role("link", name="Skip to the content")
        assert skip.evaluate("e => e === document.activeElement") and skip.is_visible()
        page.keyboard.press("Enter")
        assert page.evaluate("() => document.activeElement.id") == "main"
        # a stacked row says what each number is
        cells = page.locator("table tbody tr").first.locator("td")
        labels = [
            cells.nth(i).evaluate("e => getComputedStyle(e, '::before').content")
            for i in range(1, cells.count())
        ]
        assert all(label not in ("none", "normal", "") for label in labels), labels
        check_accessibility(page, "caseload on a phone")
        browser.close()


def test_chart_text_stays_readable_on_a_phone(fhir_server, client, uid):
    from playwright.sync_api import sync_playwright

    b = basics(client, uid)
    run("refer", referral_payload(b, uid), client)
    with Sidecar(Settings(base_url=fhir_server.base_url)) as sidecar, sync_playwright() as playwright:
        browser = _browser(playwright)
        page = browser.new_page(viewport={"width": 390, "height": 844})
        page.goto(f"{sidecar.url}/caseload")
        sizes = page.evaluate(
            "() => Array.from(document.querySelectorAll('svg.chart text'))"
            ".map(t => t.getBoundingClientRect().height).filter(h => h > 0)"
        )
        assert sizes and min(sizes) >= 11, sizes  # 12 px text drawn at its size, not shrunk to 5
        fits(page, "caseload on a phone")
        check_accessibility(page, "caseload charts on a phone")
        browser.close()
