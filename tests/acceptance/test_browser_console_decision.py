"""Issue 22 in Chromium, at a laptop's 1280 px and a phone's 390 px: a coordinator takes down a payer's
decision given by phone on the prior-authorization Task's page (a missing authorization number is
refused at its field, nothing written), then records it; the FHIR server is read independently
afterwards. The same tests take the pictures of docs/console.md for the task page, patient search, the
new-patient page and the timeline (on the embedded server, at 1280 px)."""

from __future__ import annotations

from typing import Any

import pytest

from fhircare.settings import Settings
from fhircare.workflows import run
from tests.acceptance.test_browser import ARGS, CHROMIUM
from tests.acceptance.test_browser_morning import check_accessibility, fits, shoot
from tests.exchange import conftest as two_organizations
from tests.integration.sidecar_harness import Sidecar
from tests.integration.test_console_patients import letters, patient
from tests.support.cases import basics, make, prior_auth_case, referral_payload
from tests.support.clock import day
from tests.support.console import i_am

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="Debian chromium is not installed (scripts/system-deps.sh installs it as root)",
)
WIDTHS = (1280, 390)
# the exchange's fixtures: our server, the partner's (embedded or Medplum's router) behind the fault proxy
our_server = two_organizations.our_server
partner_server = two_organizations.partner_server
proxy = two_organizations.proxy
world = two_organizations.world


def _browser(playwright: Any) -> Any:
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)


def _shoot(page: Any, kind: str, width: int, name: str) -> None:
    if width == 1280:
        shoot(page, kind, name)


def _choose_me(page: Any, url: str, me: str) -> None:
    page.goto(f"{url}/")
    i_am(page, me, "Coord")  # the prior-auth case's provider (tests/support/cases.py basics)


@pytest.mark.parametrize("width", WIDTHS)
def test_record_a_payers_phone_decision_on_the_task_page(fhir_server, client, uid, width):
    from playwright.sync_api import sync_playwright

    payload = prior_auth_case(client, uid).payload
    written = run("prior-auth", payload, client).written
    claim = next(r for r in written if r.startswith("Claim/"))
    task = next(r for r in written if r.startswith("Task/"))
    pid, tid = payload["patient"].split("/")[1], task.split("/")[1]
    with Sidecar(Settings(base_url=fhir_server.base_url)) as sidecar, sync_playwright() as playwright:
        browser = _browser(playwright)
        page = browser.new_page(viewport={"width": width, "height": 900})
        _choose_me(page, sidecar.url, payload["provider"])
        page.goto(f"{sidecar.url}/patients/{pid}/tasks/{tid}")
        check_accessibility(page, "prior-auth task page")
        fits(page, f"prior-auth task page at {width}px")

        form = page.get_by_role("form", name="Record the payer's decision")
        form.get_by_label("Approved", exact=True).check()
        page.get_by_label("Authorized from").fill(day(1))
        page.get_by_label("Authorized until").fill(day(60))
        page.get_by_label("Units authorized", exact=False).fill("6")
        page.get_by_label("Who said it", exact=False).fill(f"Dana Whitfield {uid}")
        form.get_by_label("By phone").check()
        _shoot(page, fhir_server.kind, width, "task")
        page.get_by_role("button", name="Record the decision").click()
        page.wait_for_load_state()
        assert "authorization number" in page.locator("#number-err").inner_text()
        assert page.get_by_role("alert").inner_text().startswith("Not done")
        assert page.get_by_label("Who said it", exact=False).input_value() == f"Dana Whitfield {uid}"
        check_accessibility(page, "decision refused at its field")
        fits(page, f"decision refused at {width}px")
        assert list(client.search("ClaimResponse", {"request": claim})) == []

        page.get_by_label("Authorization number", exact=False).fill(f"PA-{uid[:8]}")
        page.get_by_role("button", name="Record the decision").click()
        page.wait_for_load_state()
        assert page.get_by_role("status").inner_text().startswith("Payer's decision recorded")
        assert page.get_by_role("form", name="Record the payer's decision").count() == 0
        assert "Approved" in page.locator("dl.facts").inner_text()
        check_accessibility(page, "task page after the decision")
        fits(page, f"task page after the decision at {width}px")
        browser.close()
    [response] = client.search("ClaimResponse", {"request": claim})
    assert response["preAuthRef"] == f"PA-{uid[:8]}" and response["outcome"] == "complete"
    assert response["preAuthPeriod"] == {"start": day(1), "end": day(60)}
    assert response["insurer"]["reference"] == payload["payer"]
    assert client.read("Task", tid)["status"] == "completed"
    [provenance] = [p for p in client.search("Provenance", {"target": task}) if "ClaimResponse/" in str(p)]
    agents = {a["type"]["coding"][0]["code"]: a for a in provenance["agent"]}
    assert agents["author"]["who"]["reference"] == payload["provider"]
    assert f"Dana Whitfield {uid}" in agents["informant"]["who"]["display"]


@pytest.mark.parametrize("width", WIDTHS)
def test_patient_search_new_patient_and_timeline_pages(fhir_server, client, uid, width):
    from playwright.sync_api import sync_playwright

    family = f"Okafor{letters(uid)}"
    patient(client, family, "Ana", 64, f"MRN-{uid}-1")
    patient(client, family, "Ana", 31, f"MRN-{uid}-2")
    b = basics(client, uid)
    me = make(client, {"resourceType": "Practitioner", "name": [{"family": "Rivera", "given": ["Jordan"]}]})
    written = run("refer", referral_payload(b, uid, requester=me), client).written
    referral = next(r for r in written if r.startswith("Task/"))
    run("task", {"task": referral, "to": "accepted", "actor": me}, client)
    note = {"task": referral, "note": "Called Ana: class on Tuesday suits her", "actor": me}
    run("task", note, client)
    with Sidecar(Settings(base_url=fhir_server.base_url)) as sidecar, sync_playwright() as playwright:
        browser = _browser(playwright)
        page = browser.new_page(viewport={"width": width, "height": 900})
        page.goto(f"{sidecar.url}/patients?name=Ana+{family}")
        assert page.locator("tr[data-patient]").count() == 2
        check_accessibility(page, "patient search")
        fits(page, f"patient search at {width}px")
        _shoot(page, fhir_server.kind, width, "patient-search")

        page.get_by_role("link", name="New patient").first.click()
        page.wait_for_load_state()
        check_accessibility(page, "new patient")
        fits(page, f"new patient at {width}px")
        _shoot(page, fhir_server.kind, width, "new-patient")

        page.goto(f"{sidecar.url}/patients/{b['patient'].split('/')[1]}")
        timeline = page.locator("section[aria-labelledby='story']")
        assert timeline.locator("tbody tr").count() >= 3  # the referral, its acceptance, the note
        assert "Rivera" in timeline.inner_text()
        check_accessibility(page, "patient page with its timeline")
        fits(page, f"patient page at {width}px")
        if width == 1280 and fhir_server.kind == "embedded":
            timeline.screenshot(path=str(_shots() / "timeline.png"))
        browser.close()


@pytest.mark.parametrize("width", WIDTHS)
def test_partner_status_and_incoming_referrals_read_well_on_a_laptop_and_a_phone(world, tmp_path, width):
    """The referrals section with the partner's state, and the receiving organization's worklist with an
    incoming referral (named from the requester's server, not linked here), both axe-clean and fitting."""
    import yaml
    from playwright.sync_api import sync_playwright

    from fhircare.exchange import sync_once

    sent, _ = world.refer()
    sync_once(world.exchange, world.partner)  # sends it and reads the partner's side
    world.refer("not sent yet")
    remote = world.remote_of(sent)
    us = world.theirs.create({"resourceType": "Organization", "name": "Food bank"})
    clinic = world.theirs.create({"resourceType": "Organization", "name": "Clinic"})
    performer = {
        "self": {"base": world.theirs.base_url, "organization": f"Organization/{us['id']}"},
        "partners": {"clinic": {"organization": f"Organization/{clinic['id']}", "base": world.ours.base_url}},
    }
    (tmp_path / "performer.yaml").write_text(yaml.safe_dump(performer), encoding="utf-8")
    ours = Settings(base_url=world.ours.base_url, partners_file=world.partners_file)
    theirs = Settings(base_url=world.theirs.base_url, partners_file=tmp_path / "performer.yaml")
    with Sidecar(ours) as here, Sidecar(theirs) as there, sync_playwright() as playwright:
        browser = _browser(playwright)
        page = browser.new_page(viewport={"width": width, "height": 900})
        page.goto(f"{here.url}/patients/{world.patient.split('/')[1]}")
        states = page.locator(".partner-state").all_inner_texts()
        assert any(s.startswith("partner: requested · synced") for s in states), states
        assert "not sent" in states
        check_accessibility(page, "referrals with the partner's state")
        fits(page, f"referrals with the partner's state at {width}px")
        page.goto(f"{there.url}/?tab=unassigned")
        row = page.locator(f"tr[data-task='Task/{remote['id']}']")
        assert row.get_attribute("data-incoming") == "1"
        assert "Coord" in row.locator(".requester").inner_text()
        assert row.locator("a[href*='/patients/']").count() == 0
        check_accessibility(page, "worklist with an incoming referral")
        fits(page, f"worklist with an incoming referral at {width}px")
        browser.close()


def _shots() -> Any:
    from tests.acceptance.test_browser_morning import SHOTS

    SHOTS.mkdir(parents=True, exist_ok=True)
    return SHOTS
