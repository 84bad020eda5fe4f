"""Every workflow's form from the patient page, in Chromium: generated from the workflow's schema, no
reference to type (every reference field is a picker), axe-core clean, fitting a phone; a form sent
twice is one action; reassigning offers the patient's care team first."""

from __future__ import annotations

import re

import pytest
import requests

from fhircare.demo import Seeder
from fhircare.settings import Settings
from fhircare.web.forms import flatten, form_fields
from fhircare.workflows import WORKFLOWS
from tests.acceptance.test_browser import ARGS, CHROMIUM
from tests.acceptance.test_browser_morning import check_accessibility, fits
from tests.integration.sidecar_harness import Sidecar
from tests.support.cases import make
from tests.support.clock import day, today

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="Debian chromium is not installed (scripts/system-deps.sh installs it as root)",
)


def test_every_workflow_has_an_accessible_form_with_pickers(fhir_server, client, uid):
    from playwright.sync_api import sync_playwright

    world = Seeder(client, int(uid[:6], 16), today()).seed_all(3, lambda _: None)
    pid = world.patients[0].split("/")[1]
    settings = Settings(base_url=fhir_server.base_url)
    with Sidecar(settings) as sidecar, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page(viewport={"width": 390, "height": 844})
        for workflow in sorted(WORKFLOWS):
            page.goto(f"{sidecar.url}/patients/{pid}/do/{workflow}")
            assert page.locator("form.workflow").count() == 1, workflow
            references = [
                f.name
                for f in flatten(form_fields(settings.profiles_dir / "workflows", workflow))
                if f.kind == "ref"
            ]
            for name in references:
                if name == "patient":
                    continue  # the page's own patient, never chosen
                control = page.locator(f"[name='{name}']:not([type=hidden])")
                assert control.evaluate("e => e.tagName") == "SELECT", f"{workflow}: {name} is typed"
            for control in page.locator(
                "form.workflow input, form.workflow select, form.workflow textarea"
            ).all():
                if control.get_attribute("type") == "hidden":
                    continue
                labelled = control.evaluate(
                    "e => !!(e.labels && e.labels.length) || !!e.getAttribute('aria-label')"
                )
                assert labelled, f"{workflow}: {control.get_attribute('name')} has no label"
            check_accessibility(page, f"the {workflow} form")
            fits(page, f"the {workflow} form on a phone")
        browser.close()


def test_a_form_sent_twice_is_one_action_and_the_team_comes_first(fhir_server, client, uid):
    world = Seeder(client, int(uid[:6], 16), today()).seed_all(3, lambda _: None)
    patient = world.patients[0]
    pid = patient.split("/")[1]
    request_, _ = world.referrals[patient]
    with Sidecar(Settings(base_url=fhir_server.base_url)) as sidecar:
        browser = requests.Session()
        form = browser.get(f"{sidecar.url}/patients/{pid}/do/follow-up", params={"about": request_}).text
        fields = dict(re.findall(r'<input type="hidden" name="(csrf|request_id)" value="([^"]+)"', form))
        data = {
            **fields,
            "about": request_,
            "owner": world.coordinators[1],
            "due": day(22),
            "note": f"Call about the referral {uid}",
        }
        first = browser.post(f"{sidecar.url}/patients/{pid}/do/follow-up", data=data, allow_redirects=False)
        second = browser.post(f"{sidecar.url}/patients/{pid}/do/follow-up", data=data, allow_redirects=False)
        assert first.status_code == second.status_code == 303
        tasks = list(client.search("Task", {"based-on": request_, "owner": world.coordinators[1]}))
        assert len(tasks) == 1
        # a second render has a new request id: a new action
        again = browser.get(f"{sidecar.url}/patients/{pid}/do/follow-up").text
        assert fields["request_id"] not in again

        # the team tab: a task of this patient offers the care team (the coordinator) first
        page = browser.get(
            f"{sidecar.url}/", params={"tab": "team", "patient": patient, "page_size": "100"}
        ).text
        row = page.split(f'data-task="Task/{tasks[0]["id"]}"', 1)[1].split("</tr>", 1)[0]
        team = row.split('<optgroup label="Care team">', 1)[1].split("</optgroup>", 1)[0]
        assert world.coordinators[0] in team
        assert row.index('label="Care team"') < row.index('label="Coordinators"')


def test_the_worklist_tabs_filters_sorting_and_pages(fhir_server, client, uid):
    world = Seeder(client, int(uid[:6], 16), today()).seed_all(3, lambda _: None)
    patient = world.patients[1]
    loose = [
        f"Task/{client.create({'resourceType': 'Task', 'status': 'requested', 'intent': 'order', 'priority': 'routine', 'description': f'Unowned {uid} {n:02d}', 'for': {'reference': patient}})['id']}"
        for n in range(27)
    ]
    with Sidecar(Settings(base_url=fhir_server.base_url)) as sidecar:
        browser = requests.Session()

        def rows(**params: str) -> tuple[str, list[str]]:
            html = browser.get(f"{sidecar.url}/", params=params).text
            return html, re.findall(r'data-task="(Task/[^"]+)"', html)

        html, first = rows(tab="unassigned", patient=patient, page_size="25")
        assert len(first) == 25 and "27 open tasks" in html and "page 1 of 2" in html
        assert 'rel="next"' in html and ">Claim<" not in html  # nobody chosen: nothing to claim with
        _, second = rows(tab="unassigned", patient=patient, page_size="25", page="2")
        assert set(first) | set(second) == set(loose) and not set(first) & set(second)
        html, all_of_them = rows(tab="unassigned", patient=patient, page_size="50", sort="due")
        assert len(all_of_them) == 27 and "sorted by due date" in html

        # who I am (development mode), then "Claim" from the unassigned tab
        form = browser.get(f"{sidecar.url}/").text
        csrf = re.search(r'name="csrf" value="([^"]+)"', form).group(1)
        browser.post(f"{sidecar.url}/me", data={"csrf": csrf, "me": world.coordinators[2]})
        html, _ = rows(tab="unassigned", patient=patient, page_size="50")
        assert ">Claim<" in html
        claimed = browser.post(
            f"{sidecar.url}/tasks/{loose[0].split('/')[1]}/action",
            data={"csrf": csrf, "action": "claim", "back": "/?tab=mine"},
            allow_redirects=False,
        )
        assert claimed.status_code == 303
        assert client.read_reference(loose[0])["owner"]["reference"] == world.coordinators[2]
        html, mine = rows(tab="mine", patient=patient)
        assert loose[0] in mine and "My worklist" in html
        _, urgent = rows(tab="team", patient=patient, priority="urgent")
        assert not set(urgent) & set(loose)  # the loose tasks are routine


def test_long_unbroken_values_never_widen_a_page_on_a_phone(fhir_server, client, uid):
    """A name, an identifier, a title with no place to break (as other tests or real data leave on a
    server): every form, the patient's page, the worklist and the caseload still fit 360 px. The
    long-named coordinator is the one chosen in the header, so the header's picker holds her whatever
    else the server holds (that picker once grew with the longest coordinator's name and widened every
    page). Its resources are deleted afterwards: later tests see the server as they would without it."""
    from playwright.sync_api import sync_playwright

    long = f"Zq{int(uid, 16):015d}" * 6  # 102 characters, no word a later test's locator could match
    made: list[str] = []

    def keep(resource: dict[str, object]) -> str:
        made.append(make(client, resource))
        return made[-1]

    try:
        me = keep({"resourceType": "Practitioner", "name": [{"family": long, "given": [long]}]})
        keep({"resourceType": "Organization", "name": f"Org{long}"})
        patient = keep(
            {
                "resourceType": "Patient",
                "name": [{"family": long, "given": [long]}],
                "identifier": [{"system": "urn:test:mrn", "value": f"MRN-{long}"}],
            }
        )
        keep(
            {
                "resourceType": "RelatedPerson",
                "patient": {"reference": patient},
                "name": [{"family": f"Kin{long}"}],
            }
        )
        keep(
            {
                "resourceType": "CarePlan",
                "status": "active",
                "intent": "plan",
                "title": f"Plan{long}",
                "subject": {"reference": patient},
            }
        )
        keep(
            {
                "resourceType": "Task",
                "status": "requested",
                "intent": "order",
                "description": f"Call{long}",
                "for": {"reference": patient},
                "owner": {"reference": me},
                "restriction": {"period": {"end": "2020-01-01"}},
            }
        )
        pid = patient.split("/")[1]
        with Sidecar(Settings(base_url=fhir_server.base_url)) as sidecar, sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
            page = browser.new_page(viewport={"width": 360, "height": 780})
            page.goto(f"{sidecar.url}/")
            csrf = page.locator("input[name=csrf]").first.get_attribute("value")
            chosen = page.request.post(
                f"{sidecar.url}/me", form={"csrf": csrf or "", "me": me}, max_redirects=0
            )
            assert chosen.status == 303
            paths = [f"/patients/{pid}/do/{workflow}" for workflow in sorted(WORKFLOWS)]
            paths += [f"/patients/{pid}", f"/?tab=mine&patient={patient}", "/caseload"]
            for path in paths:
                page.goto(f"{sidecar.url}{path}")
                assert long in page.content(), path  # the long value is on the page
                assert page.locator("#me option:checked").inner_text() == f"{long} {long}", path
                fits(page, f"{path} at 360 px with long unbroken values")
            browser.close()
    finally:
        for reference in reversed(made):
            client.delete(*reference.split("/"))
