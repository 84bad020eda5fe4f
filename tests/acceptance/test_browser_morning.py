"""A coordinator's morning done entirely through the page, in Debian's Chromium driven by Playwright:
she picks "my worklist", opens a no-show gap and plans the follow-up from it, finds a food pantry in the
directory and refers to it, books the appointment and a ride, checks coverage, requests a prior
authorization, records the payer's answer and completes a task with an outcome. Every page she sees
passes axe-core (no serious or critical violation) at desktop width; the pages also fit 1024 px and a
phone. Then independent searches on the FHIR server check what was written. On the embedded server the
test also refreshes the screenshots of docs/console.md."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fhircare.demo import COORDINATORS, Seeder
from fhircare.demo.world import DEMO_SYSTEM
from fhircare.settings import Settings
from tests.acceptance.test_browser import ARGS, CHROMIUM
from tests.integration.sidecar_harness import Sidecar
from tests.integration.test_prior_auth_decision import _pas_response
from tests.support.clock import local, today
from tests.support.console import i_am

REPO = Path(__file__).resolve().parents[2]
AXE = REPO / "tests" / "browser" / "node_modules" / "axe-core" / "axe.min.js"
SHOTS = REPO / "docs" / "console"
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="Debian chromium is not installed (scripts/system-deps.sh installs it as root)",
)


def check_accessibility(page: Any, where: str) -> None:
    """axe-core on the page as it is: no serious or critical violation."""
    assert AXE.exists(), "axe-core is missing: run `make test-browser-deps` (npm ci in tests/browser)"
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.evaluate(AXE.read_text(encoding="utf-8"))
    result = page.evaluate("async () => await window.axe.run(document, {resultTypes: ['violations']})")
    bad = [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert bad == [], f"{where}: {json.dumps(bad, indent=1)}"


def fits(page: Any, where: str) -> None:
    """No horizontal scrolling of the page itself at this width."""
    overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 1, f"{where} is {overflow}px wider than the window"


def field(page: Any, name: str) -> Any:
    """A form's control by its field name (the JSON path of the payload field)."""
    return page.locator(f"[name='{name}']:not([type=hidden])")


def pick(page: Any, name: str, words: str, reference: str) -> None:
    """Choose ``reference`` in a picker by typing a name into its filter (when the list is long enough
    to have one), as a coordinator would; the choice is checked by reference."""
    control_id = page.locator(f"select[name='{name}']").get_attribute("id")
    narrow = page.locator(f"input.picker-filter[data-picker='{control_id}']")
    if narrow.count():
        narrow.fill(words)
    page.wait_for_selector(f"#{control_id} option[value='{reference}']", state="attached")
    page.locator(f"#{control_id}").select_option(value=reference)


def shoot(page: Any, kind: str, name: str) -> None:
    if kind == "embedded":
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_a_coordinators_morning_through_the_page(fhir_server, client, uid):
    from playwright.sync_api import sync_playwright

    seed = int(uid[:6], 16)
    world = Seeder(client, seed, today()).seed_all(12, lambda _: None)
    me = world.coordinators[0]
    my_name = f"{COORDINATORS[0][2]} {COORDINATORS[0][1]}"
    # the seeding's no-show: patient 9 (state 3) is hers (9 % 3 == 0)
    patient = world.patients[9]
    pid = patient.split("/")[1]
    missed = next(iter(client.search("Appointment", {"patient": patient, "status": "noshow"})))
    missed_ref = f"Appointment/{missed['id']}"
    pantry = next(
        iter(client.search("HealthcareService", {"identifier": f"{DEMO_SYSTEM}|service-pantry-central"}))
    )
    pantry_ref = f"HealthcareService/{pantry['id']}"
    kind = fhir_server.kind

    with Sidecar(Settings(base_url=fhir_server.base_url)) as sidecar, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        url = sidecar.url

        def done(expected: str) -> None:
            page.wait_for_load_state("networkidle")
            page.wait_for_selector(".flash, .problem")
            problems = [t for t in page.locator(".problem, .field-error").all_inner_texts() if t.strip()]
            assert problems == [], problems
            assert page.get_by_role("status").inner_text().startswith(expected)

        # my worklist: who I am, in development mode
        page.goto(f"{url}/")
        page.get_by_label("Find a coordinator by name").fill(COORDINATORS[0][1])  # asks /api/v1/lookup
        page.wait_for_selector(f"#me option[value='{me}']", state="attached")
        i_am(page, me, my_name)
        assert page.get_by_role("heading", name="My worklist").is_visible()
        assert page.locator("#me option:checked").inner_text() == my_name
        assert page.locator("tr[data-task]").count() > 0
        check_accessibility(page, "worklist")
        shoot(page, kind, "worklist")

        # the no-show gap, and the follow-up from its button (double-clicked: one action)
        page.get_by_role("link", name="Care gaps").click()
        page.wait_for_load_state()
        gap = page.locator(f"tr[data-gap='noshow-without-follow-up'][data-resource='{missed_ref}']")
        assert gap.count() == 1
        assert "Patient/" not in gap.inner_text()  # a name, not a reference
        check_accessibility(page, "gaps")
        shoot(page, kind, "gaps")
        gap.get_by_role("link", name="Plan a follow-up").click()
        page.wait_for_load_state()
        assert field(page, "about").input_value() == missed_ref
        assert field(page, "owner").input_value() == me
        check_accessibility(page, "follow-up form")
        shoot(page, kind, "form-follow-up")
        page.get_by_role("button", name="Plan a follow-up").dblclick()
        done("Plan a follow-up: done")
        follow_up = page.locator("p.written").get_attribute("data-written") or ""
        follow_up_task = next(r for r in follow_up.split() if r.startswith("Task/"))

        # the directory: a food pantry near her, and the referral to it
        page.get_by_role("link", name="Find a service in the directory").click()
        page.wait_for_load_state()
        page.get_by_label("Category").select_option(label="Food pantry")
        page.get_by_label("Postal code or city").fill("02139")
        page.get_by_role("button", name="Search").click()
        page.wait_for_load_state()
        row = page.locator(f"tr[data-service='{pantry_ref}']")
        assert "Harbor Food Pantry, Central Square" in row.inner_text()
        check_accessibility(page, "directory")
        shoot(page, kind, "directory")
        row.get_by_role("link", name="Refer").click()
        page.wait_for_load_state()
        assert field(page, "performer").input_value() == pantry_ref
        field(page, "service").select_option(label="Assistance with application for food pantry program")
        # an error first: a reason is missing, and it shows next to its field
        page.get_by_role("button", name="Refer to a service").click()
        page.wait_for_load_state()
        assert page.locator("[data-field='reason'] .field-error").inner_text() == "required"
        check_accessibility(page, "referral form with an error")
        shoot(page, kind, "form-error")
        field(page, "reason").fill("food-insecurity")
        field(page, "priority").select_option("urgent")
        page.get_by_role("button", name="Refer to a service").click()
        done("Refer to a service: done")
        referral = next(
            r
            for r in (page.locator("p.written").get_attribute("data-written") or "").split()
            if r.startswith("ServiceRequest/")
        )
        check_accessibility(page, "patient page")
        shoot(page, kind, "patient")

        # book the appointment for the referral, then the ride to it
        page.get_by_role("link", name="Book or change an appointment").click()
        page.wait_for_load_state()
        field(page, "referral").select_option(referral)
        field(page, "start").fill(local(5, "14:30"))
        page.get_by_role("button", name="Book or change an appointment").click()
        done("Book or change an appointment: done")
        booked = next(
            r
            for r in (page.locator("p.written").get_attribute("data-written") or "").split()
            if r.startswith("Appointment/")
        )
        page.locator(f"li[data-appointment='{booked}']").get_by_role("link", name="Ride").click()
        page.wait_for_load_state()
        assert field(page, "appointment").input_value() == booked
        pick(page, "vendor", "Reliable", world.organizations["rides"])
        field(page, "pickup").fill("Home address on file")
        shoot(page, kind, "form-ride")
        page.get_by_role("button", name="Arrange a ride").click()
        done("Arrange a ride: done")

        # coverage, and a prior authorization with the payer
        page.get_by_role("link", name="Check coverage").click()
        page.wait_for_load_state()
        pick(page, "payor", "Blue Lake", world.organizations["payer-a"])
        field(page, "subscriber_id").fill(f"SUB-{uid}")
        field(page, "service").select_option(label="Assistance with application for food pantry program")
        page.get_by_role("button", name="Check coverage").click()
        done("Check coverage: done")
        coverage = next(
            r
            for r in (page.locator("p.written").get_attribute("data-written") or "").split()
            if r.startswith("Coverage/")
        )
        assert "Blue Lake Health Plan" in page.locator(f"li[data-coverage='{coverage}']").inner_text()

        page.get_by_role("link", name="Request a prior authorization").click()
        page.wait_for_load_state()
        field(page, "coverage").select_option(coverage)
        pick(page, "payer", "Blue Lake", world.organizations["payer-a"])
        field(page, "service_request").select_option(referral)
        field(page, "service").select_option(label="Diabetes education")
        page.get_by_role("button", name="Request a prior authorization").click()
        done("Request a prior authorization: done")
        written = (page.locator("p.written").get_attribute("data-written") or "").split()
        claim = next(r for r in written if r.startswith("Claim/"))
        prior_auth = next(r for r in written if r.startswith("Task/"))

        # the payer answers (its own system writes the ClaimResponse); she records it from the page
        client.create(_pas_response(patient, claim, "A1", number=f"PA-{uid}"))
        page.get_by_role("link", name="Authorizations").click()
        page.wait_for_load_state()
        answered = page.locator(f"tr[data-task='{prior_auth}']")
        check_accessibility(page, "authorizations")
        shoot(page, kind, "authorizations")
        answered.get_by_role("button", name="Record answer").click()
        done("Payer's answer recorded")

        # the follow-up of this morning: accepted, started, completed with an outcome
        page.goto(f"{url}/?tab=mine&page_size=100")
        task_row = page.locator(f"tr[data-task='{follow_up_task}']")
        task_row.get_by_role("button", name="Accept").click()
        done("Task accepted")
        page.locator(f"tr[data-task='{follow_up_task}']").get_by_role("button", name="Start").click()
        done("Task started")
        page.locator(f"tr[data-task='{follow_up_task}']").get_by_role("link", name="More:").click()
        page.wait_for_load_state()
        field(page, "to").select_option("completed")
        field(page, "business_status").fill("Reached the patient; new appointment booked")
        page.get_by_role("button", name="Move a task").click()
        done("Task completed")  # its page, with the banner offering Undo

        page.get_by_role("link", name="Caseload").click()
        page.wait_for_load_state()
        check_accessibility(page, "caseload")
        shoot(page, kind, "caseload")

        # the same pages at 1024 px and on a phone
        for width, height, label in ((1024, 768, "1024"), (390, 844, "phone")):
            page.set_viewport_size({"width": width, "height": height})
            for path in (
                "/",
                "/gaps",
                f"/patients/{pid}",
                f"/patients/{pid}/do/refer",
                "/directory",
                "/caseload",
            ):
                page.goto(f"{url}{path}")
                fits(page, f"{path} at {label}")
                if label == "phone" and path == "/":
                    check_accessibility(page, "the worklist on a phone")
                    shoot(page, kind, "worklist-phone")
            if label == "phone":
                shoot(page, kind, "caseload-phone")
        browser.close()

    # independent searches: what the morning wrote
    follow_ups = list(client.search("Task", {"based-on": missed_ref}))
    assert len(follow_ups) == 1  # the double-click was one action
    assert follow_ups[0]["owner"]["reference"] == me
    done_task = client.read_reference(follow_up_task)
    assert done_task["status"] == "completed"
    assert done_task["businessStatus"]["text"] == "Reached the patient; new appointment booked"
    request = client.read_reference(referral)
    assert request["performer"][0]["reference"] == pantry_ref and request["priority"] == "urgent"
    assert request["subject"]["reference"] == patient
    appointment = client.read_reference(booked)
    assert appointment["status"] == "booked" and appointment["start"].startswith(local(5, "14:30"))
    assert any(p["actor"]["reference"] == me for p in appointment["participant"] if "actor" in p)
    rides = [
        r
        for r in client.search("ServiceRequest", {"patient": patient})
        if booked in [i.get("reference") for i in r.get("supportingInfo") or []]
    ]
    assert len(rides) == 1
    stored = client.read_reference(coverage)
    assert stored["subscriberId"] == f"SUB-{uid}"
    decided = client.read_reference(prior_auth)
    assert decided["status"] == "completed" and decided["businessStatus"]["coding"][0]["code"] == "approved"
