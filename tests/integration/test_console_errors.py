"""Issue 22, item 4: every refusal marks its field in plain words (the limit it broke; no regular
expression, schema text, JSON path or resource id), a failure is never a green banner, and the banner
names the patient or task. Nothing is written by a refused form."""

from __future__ import annotations

import re

import requests

from fhircare.workflows import run
from tests.support.cases import basics, make, referral_payload
from tests.support.console import hidden

LEAKS = ("$.", "'^", "pattern", "anyOf", "oneOf", "is not valid under", "Patient/", "Task/", "Organization/")


def field_error(html: str, name: str) -> str:
    block = html.split(f'data-field="{name}"', 1)[1]
    return block.split('class="field-error"', 1)[1].split("</p>", 1)[0].split(">", 1)[1]


def problems(html: str) -> str:
    """The text of the banner and of every field error, tags left out."""
    banner = [part.split("<form", 1)[0].split("</main>", 1)[0] for part in html.split('class="problem"')[1:]]
    fields = re.findall(r'class="field-error"[^>]*>(.*?)</p>', html, re.S)
    return re.sub(r"<[^>]+>", " ", " ".join([*banner, *fields]))


def test_a_referral_refused_marks_each_field_in_words_and_writes_nothing(dev, client, fhir_server, uid):
    b = basics(client, uid)
    client.update(
        {**client.read_reference(b["patient"]), "name": [{"family": f"Okafor{uid}", "given": ["Ana"]}]}
    )
    pid = b["patient"].split("/")[1]
    browser = requests.Session()
    form = browser.get(f"{dev.url}/patients/{pid}/do/refer").text
    data = {**hidden(form), **referral_payload(b, uid), "note": "n" * 5000}
    data.pop("service")
    before = fhir_server.resource_counts()
    answer = browser.post(f"{dev.url}/patients/{pid}/do/refer", data=data, allow_redirects=False)
    assert answer.status_code == 422
    assert field_error(answer.text, "note") == "Too long: at most 4,000 characters."
    assert field_error(answer.text, "service") == "required"
    banner = answer.text.split('class="problem"', 1)[1].split("</div>", 1)[0]
    assert f"Ana Okafor{uid}" in banner and "2 fields marked below" in banner
    assert 'class="flash"' not in answer.text
    shown = problems(answer.text)
    assert not [leak for leak in LEAKS if leak in shown] and "n" * 100 not in shown
    assert fhir_server.resource_counts() == before


def test_a_task_form_with_nothing_to_change_says_what_it_needs(dev, client, uid):
    b = basics(client, uid)
    task = next(r for r in run("refer", referral_payload(b, uid), client).written if r.startswith("Task/"))
    pid = b["patient"].split("/")[1]
    browser = requests.Session()
    form = browser.get(f"{dev.url}/patients/{pid}/do/task", params={"task": task}).text
    answer = browser.post(f"{dev.url}/patients/{pid}/do/task", data={**hidden(form), "task": task})
    assert answer.status_code == 422
    shown = problems(answer.text)
    assert "Fill at least one of:" in shown and "note" in shown
    assert "Fulfil referral" in shown.split("Fill at least", 1)[0]  # the banner names the task
    assert not [leak for leak in LEAKS if leak in shown]


def test_a_refused_quick_action_is_a_red_banner_naming_the_task_and_patient(dev, client, uid):
    b = basics(client, uid)
    client.update(
        {**client.read_reference(b["patient"]), "name": [{"family": f"Silva{uid}", "given": ["Ana"]}]}
    )
    someone = make(client, {"resourceType": "Practitioner", "name": [{"family": "Else"}]})
    task = make(
        client,
        {
            "resourceType": "Task",
            "status": "requested",
            "intent": "order",
            "description": f"Call Ana {uid}",
            "for": {"reference": b["patient"]},
            "owner": {"reference": someone},
        },
    )
    browser = requests.Session()
    token = hidden(browser.get(f"{dev.url}/").text)["csrf"]
    browser.post(f"{dev.url}/me", data={"csrf": token, "me": b["coordinator"]})
    answer = browser.post(
        f"{dev.url}/tasks/{task.split('/')[1]}/action", data={"csrf": token, "action": "claim", "back": "/"}
    )
    assert answer.status_code == 200
    banner = answer.text.split('class="problem" role="alert">', 1)[1].split("</p>", 1)[0]
    assert banner.startswith("Not done:") and f"Call Ana {uid}" in banner and f"Ana Silva{uid}" in banner
    assert 'class="flash"' not in answer.text and "Task/" not in banner
    assert client.read_reference(task)["owner"]["reference"] == someone
    accepted = browser.post(
        f"{dev.url}/tasks/{task.split('/')[1]}/action", data={"csrf": token, "action": "accept", "back": "/"}
    )
    flash = accepted.text.split('class="flash" role="status">', 1)[1].split("</p>", 1)[0]
    assert flash.startswith("Task accepted") and f"Call Ana {uid}" in flash and f"Ana Silva{uid}" in flash
    assert client.read_reference(task)["status"] == "accepted"


def test_a_due_date_in_the_past_is_asked_for_before_anything_is_written(dev, client, fhir_server, uid):
    from tests.support.clock import day

    b = basics(client, uid)
    referral = run("refer", referral_payload(b, uid), client).written[0]
    pid = b["patient"].split("/")[1]
    browser = requests.Session()
    form = browser.get(f"{dev.url}/patients/{pid}/do/follow-up", params={"about": referral}).text
    data = {
        **hidden(form),
        "about": referral,
        "owner": b["coordinator"],
        "due": day(-3),
        "note": f"Late {uid}",
    }
    before = fhir_server.resource_counts()
    asked = browser.post(f"{dev.url}/patients/{pid}/do/follow-up", data=data)
    assert asked.status_code == 422
    assert "in the past" in field_error(asked.text, "due") and 'name="confirm"' in asked.text
    assert fhir_server.resource_counts() == before
    kept = browser.post(
        f"{dev.url}/patients/{pid}/do/follow-up", data={**data, "confirm": "1"}, allow_redirects=False
    )
    assert kept.status_code == 303
    tasks = [t for t in client.search("Task", {"focus": referral}) if f"Late {uid}" in str(t.get("note"))]
    assert len(tasks) == 1 and tasks[0]["restriction"]["period"]["end"].startswith(day(-3))


def test_a_record_refused_by_a_local_profile_is_said_about_the_record(dev, client, fhir_server, uid):
    b = basics(client, uid)  # its care plan has no category: a revision would break the profile
    pid = b["patient"].split("/")[1]
    browser = requests.Session()
    form = browser.get(f"{dev.url}/patients/{pid}/do/care-plan").text
    data = {**hidden(form), "care_plan": b["plan"], "author": b["coordinator"], "title": f"Plan {uid}"}
    before = fhir_server.resource_counts()
    answer = browser.post(f"{dev.url}/patients/{pid}/do/care-plan", data=data)
    assert answer.status_code == 422
    shown = problems(answer.text)
    assert "does not meet the caseload-care-plan profile: its category is missing" in shown
    assert "is a required property" not in shown and "required:" not in shown
    assert fhir_server.resource_counts() == before
