"""Issue 22, item 1: a coordinator finds a patient by name, birth date or record number from any page,
and two patients of the same name are told apart (birth date, age, record number) wherever named."""

from __future__ import annotations

import re
from datetime import date

import requests

from tests.support.cases import make
from tests.support.clock import day, today


def letters(uid: str) -> str:
    """A name part made of the test's uid with no digit in it (a word with a digit is a record number)."""
    return "".join(chr(ord("a") + int(c, 16)) for c in uid).capitalize()


def born_years_ago(years: int) -> str:
    """A birth date exactly ``years`` whole years before the product's today (birthday already past)."""
    now = today()
    return day(0, base=date(now.year - years, now.month, min(now.day, 28)))


def patient(client, family: str, given: str, years: int, mrn: str) -> str:
    return make(
        client,
        {
            "resourceType": "Patient",
            "name": [{"family": family, "given": [given]}],
            "birthDate": born_years_ago(years),
            "gender": "female",
            "identifier": [
                {
                    "type": {
                        "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]
                    },
                    "system": "urn:test:mrn",
                    "value": mrn,
                }
            ],
        },
    )


def rows(html: str) -> list[str]:
    return re.findall(r'<tr data-patient="(Patient/[^"]+)"', html)


def test_two_patients_of_the_same_name_are_found_and_told_apart(dev, client, uid):
    family = f"Okafor{letters(uid)}"
    older = patient(client, family, "Ana", 64, f"MRN-{uid}-1")
    younger = patient(client, family, "Ana", 31, f"MRN-{uid}-2")

    by_name = requests.get(f"{dev.url}/patients", params={"name": f"Ana {family}"}, timeout=30)
    assert by_name.status_code == 200
    assert sorted(rows(by_name.text)) == sorted([older, younger])
    for ref, years, mrn in ((older, 64, f"MRN-{uid}-1"), (younger, 31, f"MRN-{uid}-2")):
        row = by_name.text.split(f'data-patient="{ref}"', 1)[1].split("</tr>", 1)[0]
        assert born_years_ago(years) in row and f">{years}<" in row and mrn in row

    by_birth = requests.get(
        f"{dev.url}/patients", params={"name": family, "birthdate": born_years_ago(31)}, timeout=30
    )
    assert rows(by_birth.text) == [younger]
    by_number = requests.get(f"{dev.url}/patients", params={"identifier": f"MRN-{uid}-1"}, timeout=30)
    assert rows(by_number.text) == [older]
    # the header's one box: a name, a birth date and a record number in any order
    boxed = requests.get(f"{dev.url}/patients", params={"q": f"{born_years_ago(64)} {family}"}, timeout=30)
    assert rows(boxed.text) == [older]

    # the patient page and a workflow form say which Ana this is
    page = requests.get(f"{dev.url}/patients/{younger.split('/')[1]}", timeout=30).text
    assert f"Born {born_years_ago(31)} (31 years)" in page and f"record number MRN-{uid}-2" in page
    form = requests.get(f"{dev.url}/patients/{older.split('/')[1]}/do/follow-up", timeout=30).text
    assert f'data-card="{older}"' in form and f"MRN-{uid}-1" in form and "(64 y)" in form


def test_a_search_the_server_cannot_answer_marks_its_field(dev, client, uid):
    answer = requests.get(f"{dev.url}/patients", params={"birthdate": "second of May"}, timeout=30)
    assert answer.status_code == 422
    field = answer.text.split('id="s-birthdate-err"', 1)[1].split("</p>", 1)[0]
    assert "birth date must be a full date" in field
    assert "Patient?" not in answer.text and "$." not in answer.text


def test_many_matches_come_a_page_at_a_time(dev, client, uid):
    family = f"Kowalski{letters(uid)}"
    made = {
        patient(client, family, f"Luis{letters(str(i).zfill(2))}", 40 + i, f"K-{uid}-{i}") for i in range(23)
    }
    first = requests.get(f"{dev.url}/patients", params={"name": family}, timeout=30).text
    assert len(rows(first)) == 20 and 'rel="next"' in first
    second = requests.get(f"{dev.url}/patients", params={"name": family, "page": "2"}, timeout=30).text
    assert len(rows(second)) == 3 and 'rel="next"' not in second and 'rel="prev"' in second
    assert set(rows(first)) | set(rows(second)) == made


def test_the_worklist_names_each_patient_with_birth_date_and_record_number(dev, client, uid):
    family = f"Kowalski{letters(uid)}"
    me = make(client, {"resourceType": "Practitioner", "name": [{"family": f"Coord{letters(uid)}"}]})
    people = [patient(client, family, "Luis", years, f"W-{uid}-{years}") for years in (52, 78)]
    for who in people:
        make(
            client,
            {
                "resourceType": "Task",
                "status": "requested",
                "intent": "order",
                "description": f"Call {uid}",
                "for": {"reference": who},
                "owner": {"reference": me},
            },
        )
    html = requests.get(f"{dev.url}/", params={"owner": me}, timeout=30).text
    for who, years in zip(people, (52, 78), strict=True):
        card = html.split(f'data-card="{who}"', 1)[1].split("</span>", 1)[0]
        assert born_years_ago(years) in card and f"W-{uid}-{years}" in card
