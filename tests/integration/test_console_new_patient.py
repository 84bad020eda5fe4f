"""Issue 22, item 1 (the rest): *New patient* runs ``enroll`` from the page, family and care team
included; enrolling an existing patient from their page finds them by record number (no second Patient).
Checked on the FHIR server."""

from __future__ import annotations

import re

import requests

from tests.integration.test_console_patients import born_years_ago, letters, patient
from tests.support.cases import make
from tests.support.console import hidden


def value_of(html: str, name: str) -> str:
    found = re.search(rf'name="{re.escape(name)}" value="([^"]*)"', html)
    return found.group(1) if found else ""


def test_a_new_patient_is_enrolled_with_a_caregiver_and_a_care_team(dev, client, uid):
    me = make(client, {"resourceType": "Practitioner", "name": [{"family": f"Rivera{letters(uid)}"}]})
    nurse = make(client, {"resourceType": "Practitioner", "name": [{"family": f"Nurse{letters(uid)}"}]})
    browser = requests.Session()
    form = browser.get(f"{dev.url}/patients/new").text
    assert "<h1>New patient</h1>" in form and value_of(form, "patient.identifier.system").startswith("http")
    family = f"Okafor{letters(uid)}"
    data = {
        **hidden(form),
        "patient.identifier.system": value_of(form, "patient.identifier.system"),
        "patient.identifier.value": f"NEW-{uid}",
        "patient.name.family": family,
        "patient.name.given": "Ana",
        "patient.birthDate": born_years_ago(58),
        "patient.gender": "female",
        "coordinator": me,
        "family[0].name": f"Rosa {family}",
        "family[0].relationship": "DAU",
        "family[0].phone": "+1 555 0100",
        "team[0].member": nurse,
        "team[0].role": "nurse",
    }
    sent = browser.post(f"{dev.url}/patients/new", data=data, allow_redirects=False)
    assert sent.status_code == 303, sent.text[-3000:]
    assert (
        browser.post(f"{dev.url}/patients/new", data=data, allow_redirects=False).status_code == 303
    )  # Back, resubmit
    found = list(client.search("Patient", {"identifier": f"NEW-{uid}"}))
    assert len(found) == 1 and found[0]["birthDate"] == born_years_ago(58)
    new = f"Patient/{found[0]['id']}"
    assert sent.headers["Location"].endswith(f"/patients/{found[0]['id']}")
    kin = list(client.search("RelatedPerson", {"patient": new}))
    assert [k["name"][0]["family"] for k in kin] == [family]
    teams = list(client.search("CareTeam", {"patient": new}))
    members = {p["member"]["reference"] for t in teams for p in t.get("participant") or []}
    assert {me, nurse} <= members
    plans = list(client.search("CarePlan", {"subject": new, "status": "active"}))
    assert len(plans) == 1
    page = browser.get(f"{dev.url}/patients/{found[0]['id']}").text
    assert f"record number NEW-{uid}" in page and f"Rosa {family}" in page


def test_a_refused_new_patient_marks_the_fields_and_writes_nothing(dev, client, fhir_server, uid):
    browser = requests.Session()
    form = browser.get(f"{dev.url}/patients/new").text
    before = fhir_server.resource_counts()
    answer = browser.post(
        f"{dev.url}/patients/new",
        data={
            **hidden(form),
            "patient.name.family": f"Nobody{letters(uid)}",
            "patient.birthDate": "12/05/1960",
        },
    )
    assert answer.status_code == 422
    for name in ("patient.identifier.value", "patient.gender", "coordinator"):
        assert "required" in answer.text.split(f'data-field="{name}"', 1)[1].split("</p>", 1)[0], name
    assert "Give a full date" in answer.text.split('data-field="patient.birthDate"', 1)[1].split("</p>", 1)[0]
    assert fhir_server.resource_counts() == before


def test_enrolling_an_existing_patient_from_their_page_finds_them(dev, client, uid):
    me = make(client, {"resourceType": "Practitioner", "name": [{"family": "Coord"}]})
    existing = patient(client, f"Kowalski{letters(uid)}", "Luis", 70, f"EX-{uid}")
    pid = existing.split("/")[1]
    browser = requests.Session()
    form = browser.get(f"{dev.url}/patients/{pid}/do/enroll").text
    assert value_of(form, "patient.identifier.value") == f"EX-{uid}"
    assert value_of(form, "patient.name.family") == f"Kowalski{letters(uid)}"
    data = {
        **hidden(form),
        **{
            k: value_of(form, k)
            for k in (
                "patient.identifier.system",
                "patient.identifier.value",
                "patient.name.family",
                "patient.name.given",
                "patient.birthDate",
            )
        },
        "patient.gender": "female",
        "coordinator": me,
        "family[0].name": f"Marta Kowalski{letters(uid)}",
        "family[0].relationship": "SPS",
    }
    sent = browser.post(f"{dev.url}/patients/{pid}/do/enroll", data=data, allow_redirects=False)
    assert sent.status_code == 303, sent.text[-3000:]
    assert [f"Patient/{p['id']}" for p in client.search("Patient", {"identifier": f"EX-{uid}"})] == [existing]
    assert len(list(client.search("RelatedPerson", {"patient": existing}))) == 1
