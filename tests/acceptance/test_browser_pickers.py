"""Issue 22, items 3 and 5 in Chromium, at a laptop's 1280 px and a phone's 390 px, on both servers:
pickers offer what their field takes (payers for a coverage, transport vendors for a ride) with another
organization chosen apart; development mode reaches any practitioner by name, a page at a time; Back and
resubmit is one action while a second visit to the same form is a new one. The FHIR server is read
independently after each step."""

from __future__ import annotations

from typing import Any

import pytest

from fhircare.settings import Settings
from fhircare.workflows import run
from tests.acceptance.test_browser import ARGS, CHROMIUM
from tests.acceptance.test_browser_morning import check_accessibility, fits
from tests.integration.sidecar_harness import Sidecar
from tests.integration.test_console_patients import letters
from tests.integration.test_pickers_filtered import RIDE, typed
from tests.support.cases import basics, booked_appointment, make, referral_payload
from tests.support.clock import local
from tests.support.console import choose_organization, i_am

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="Debian chromium is not installed (scripts/system-deps.sh installs it as root)",
)
WIDTHS = (1280, 390)


def field(page: Any, name: str) -> Any:
    return page.locator(f"[name='{name}']:not([type=hidden])")


def options(page: Any, name: str) -> list[str]:
    return field(page, name).locator("option").evaluate_all("os => os.map(o => o.value).filter(v => v)")


def sent(page: Any, title: str) -> str:
    """Send the form; the page says it was done (or already done) and nothing is marked."""
    page.get_by_role("button", name=title).click()
    page.wait_for_load_state()
    assert page.get_by_role("alert").count() == 0, page.get_by_role("alert").all_inner_texts()
    status: str = page.get_by_role("status").first.inner_text()
    assert status.startswith(f"{title}: done"), status
    return status


@pytest.mark.parametrize("width", WIDTHS)
def test_payer_and_vendor_pickers_offer_only_what_the_field_takes(fhir_server, client, uid, width):
    from playwright.sync_api import sync_playwright

    b = basics(client, uid)
    name = letters(uid)
    payer = typed(client, f"Plan{name}", "pay")
    clinic = make(client, {"resourceType": "Organization", "name": f"Clinic{name}"})  # typed as nothing
    vans = make(client, {"resourceType": "Organization", "name": f"Vans{name}"})
    make(
        client,
        {
            "resourceType": "HealthcareService",
            "active": True,
            "name": f"Vans {name}",
            "providedBy": {"reference": vans},
            "type": [{"coding": [{"system": RIDE[0], "code": RIDE[1]}]}],
        },
    )
    appointment = booked_appointment(client, b, uid)
    pid = b["patient"].split("/")[1]
    with Sidecar(Settings(base_url=fhir_server.base_url)) as sidecar, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page(viewport={"width": width, "height": 900})
        page.goto(f"{sidecar.url}/")
        i_am(page, b["coordinator"], "Coord")

        # check coverage: payers only; a clinic not typed as one is chosen under "Another organization"
        page.goto(f"{sidecar.url}/patients/{pid}/do/coverage-check")
        offered = options(page, "payor")
        assert payer in offered and clinic not in offered and vans not in offered
        choose_organization(page, "payor", f"Clinic{name}", clinic)
        field(page, "subscriber_id").fill(f"M{uid}")
        field(page, "service").select_option("diabetes-education")
        check_accessibility(page, "the coverage form with another organization open")
        fits(page, f"the coverage form at {width}px")
        sent(page, "Check coverage")
        [coverage] = list(client.search("Coverage", {"beneficiary": b["patient"]}))
        assert coverage["payor"][0]["reference"] == clinic

        # a ride: transport vendors only (the provider of a transport service)
        page.goto(f"{sidecar.url}/patients/{pid}/do/transport?appointment={appointment}")
        offered = options(page, "vendor")
        assert vans in offered and clinic not in offered and payer not in offered
        field(page, "vendor").select_option(vans)
        check_accessibility(page, "the ride form")
        fits(page, f"the ride form at {width}px")
        sent(page, "Arrange a ride")
        rides = [
            r
            for r in client.search("ServiceRequest", {"patient": b["patient"]})
            if appointment in str(r.get("supportingInfo"))
        ]
        assert [r["performer"][0]["reference"] for r in rides] == [vans]
        browser.close()


@pytest.mark.parametrize("width", WIDTHS)
def test_i_am_reaches_any_practitioner_by_name_a_page_at_a_time(fhir_server, client, uid, width):
    from playwright.sync_api import sync_playwright

    family = f"Crowd{letters(uid)}"
    people = [
        make(client, {"resourceType": "Practitioner", "name": [{"family": family, "given": [f"G{n:02d}"]}]})
        for n in range(25)
    ]
    target = people[22]  # sorted by name: on the second page of 20
    with Sidecar(Settings(base_url=fhir_server.base_url)) as sidecar, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page(viewport={"width": width, "height": 900})
        page.goto(f"{sidecar.url}/")
        # by keyboard: the header's name field, Enter, the next page, the person's button
        page.get_by_label("Find a coordinator by name").fill(family)
        with page.expect_navigation():
            page.keyboard.press("Enter")
        assert page.locator("button[name='me']").count() == 20
        check_accessibility(page, "who are you, first page")
        fits(page, f"who are you at {width}px")
        page.get_by_role("link", name="Next", exact=True).focus()
        with page.expect_navigation():
            page.keyboard.press("Enter")
        buttons = page.locator("button[name='me']")
        assert buttons.evaluate_all("bs => bs.map(b => b.value)") == people[20:]
        assert buttons.first.bounding_box()["height"] >= 44
        page.locator(f"button[name='me'][value='{target}']").focus()
        with page.expect_navigation():
            page.keyboard.press("Enter")
        assert page.get_by_label("Development mode: I am").input_value() == target
        # the choice holds: the next form names them as the acting coordinator
        b = basics(client, uid)
        page.goto(f"{sidecar.url}/patients/{b['patient'].split('/')[1]}/do/follow-up")
        assert field(page, "owner").input_value() == target
        browser.close()
    assert len(list(client.search("Practitioner", {"family": family}))) == 25  # choosing writes nothing


@pytest.mark.parametrize("width", WIDTHS)
def test_back_and_resubmit_is_one_booking_and_a_second_visit_moves_again(fhir_server, client, uid, width):
    from playwright.sync_api import sync_playwright

    b = basics(client, uid)
    referral = run("refer", referral_payload(b, uid), client).written[0]
    pid, patient = b["patient"].split("/")[1], b["patient"]

    def appointments() -> list[dict[str, Any]]:
        return list(client.search("Appointment", {"patient": patient}))

    with Sidecar(Settings(base_url=fhir_server.base_url)) as sidecar, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page(viewport={"width": width, "height": 900})
        page.goto(f"{sidecar.url}/")
        i_am(page, b["coordinator"], "Coord")
        page.goto(f"{sidecar.url}/patients/{pid}")
        title = "Book or change an appointment"

        def open_form() -> str:
            page.get_by_role("link", name=title).first.click()
            page.wait_for_load_state()
            assert page.locator("#sent-before").is_hidden()  # a visit: no warning
            return str(page.locator("form.workflow input[name=request_id]").input_value())

        first_id = open_form()
        field(page, "referral").select_option(referral)
        field(page, "start").fill(local(5, "14:30"))
        sent(page, title)
        assert len(appointments()) == 1

        # Back, then send the same form again: the same action, replayed
        page.go_back()
        page.wait_for_load_state()
        assert page.locator("form.workflow input[name=request_id]").input_value() == first_id
        assert page.locator("#sent-before").is_visible()
        check_accessibility(page, "a form returned to with Back")
        field(page, "referral").select_option(referral)
        field(page, "start").fill(local(5, "14:30"))
        assert "(already done)" in sent(page, title)
        [first] = appointments()
        assert first["status"] == "booked"

        # a second visit: a new id, no warning; the move goes through; a third visit moves it again
        moved_from = f"Appointment/{first['id']}"
        for n, start in enumerate((local(6, "09:30"), local(7, "11:00")), start=1):
            assert open_form() != first_id
            field(page, "action").select_option("reschedule")
            field(page, "appointment").select_option(moved_from)
            field(page, "start").fill(start)
            status = sent(page, title)
            assert "(already done)" not in status
            found = appointments()
            booked = [a for a in found if a["status"] == "booked"]
            assert len(found) == 1 + n and len(booked) == 1 and booked[0]["start"].startswith(start)
            assert client.read_reference(moved_from)["status"] == "cancelled"
            moved_from = f"Appointment/{booked[0]['id']}"
        browser.close()
