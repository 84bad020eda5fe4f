"""Issue 22, item 2: a task's own page. A note without a status change (appended, with author and time);
only the statuses the state machine allows from here, the on-hold reason asked for and shown; a closed
task stays reachable (and takes notes); Back-and-resubmit is one action. Checked on the FHIR server."""

from __future__ import annotations

import re

import pytest
import requests

from fhircare.workflows import run
from tests.integration.sidecar_harness import Sidecar
from tests.support.cases import basics, referral_payload


class Browser:
    """A coordinator's browser on the dev-mode console: chose who she is, keeps her session."""

    def __init__(self, dev: Sidecar, me: str) -> None:
        self.dev, self.session = dev, requests.Session()
        self.post("/me", {"me": me}, self.form("/"))

    def get(self, path: str) -> requests.Response:
        return self.session.get(f"{self.dev.url}{path}", timeout=30)

    def form(self, path: str, action: str | None = None) -> dict[str, str]:
        """The hidden fields (csrf, request_id) of the form posting to ``action`` on the page at ``path``."""
        html = self.get(path).text
        if action:
            html = html.split(f'action="{action}"', 1)[1].split("</form>", 1)[0]
        return dict(re.findall(r'<input type="hidden" name="(csrf|request_id)" value="([^"]+)"', html))

    def post(self, path: str, data: dict[str, str], hidden: dict[str, str]) -> requests.Response:
        return self.session.post(
            f"{self.dev.url}{path}", data={**hidden, **data}, allow_redirects=False, timeout=30
        )


@pytest.fixture()
def world(client, uid) -> dict[str, str]:
    b = basics(client, uid)
    written = run("refer", referral_payload(b, uid), client).written
    return {**b, "task": next(r for r in written if r.startswith("Task/"))}


def paths(world: dict[str, str]) -> tuple[str, str]:
    pid, tid = world["patient"].split("/")[1], world["task"].split("/")[1]
    return f"/patients/{pid}/tasks/{tid}", f"/patients/{pid}/tasks/{tid}"


def test_a_note_is_added_without_a_status_change_once_however_often_it_is_sent(dev, client, world, uid):
    page, base = paths(world)
    browser = Browser(dev, world["coordinator"])
    hidden = browser.form(page, f"{base}/note")
    sent = browser.post(f"{base}/note", {"note": f"Left a voicemail {uid}"}, hidden)
    assert sent.status_code == 303, sent.text
    again = browser.post(f"{base}/note", {"note": f"Left a voicemail {uid}"}, hidden)  # Back, resubmit
    assert again.status_code == 303
    task = client.read_reference(world["task"])
    notes = [n for n in task.get("note") or [] if uid in n["text"] and "voicemail" in n["text"]]
    assert len(notes) == 1 and task["status"] == "requested"
    assert notes[0]["authorReference"]["reference"] == world["coordinator"] and notes[0]["time"]
    shown = browser.get(page).text
    assert (
        f"Left a voicemail {uid}" in shown and "Coord" in shown.split(f"Left a voicemail {uid}", 1)[1][:200]
    )


def test_the_status_form_offers_only_legal_moves_and_asks_the_on_hold_reason(dev, client, world, uid):
    page, base = paths(world)
    browser = Browser(dev, world["coordinator"])
    offered = re.findall(r'name="to" value="([^"]+)"', browser.get(page).text)
    assert offered == ["received", "accepted", "ready", "rejected", "cancelled"]
    for target in ("accepted", "in-progress"):
        moved = browser.post(f"{base}/status", {"to": target}, browser.form(page, f"{base}/status"))
        assert moved.status_code == 303, moved.text
    assert re.findall(r'name="to" value="([^"]+)"', browser.get(page).text) == [
        "on-hold",
        "completed",
        "failed",
        "cancelled",
    ]
    refused = browser.post(f"{base}/status", {"to": "on-hold"}, browser.form(page, f"{base}/status"))
    assert refused.status_code == 422
    assert "Say why the task is on-hold" in refused.text.split('id="reason-err"', 1)[1].split("</p>", 1)[0]
    assert client.read_reference(world["task"])["status"] == "in-progress"
    held = browser.post(
        f"{base}/status",
        {"to": "on-hold", "reason": f"Away until next month {uid}"},
        browser.form(page, f"{base}/status"),
    )
    assert held.status_code == 303
    task = client.read_reference(world["task"])
    assert task["status"] == "on-hold" and task["statusReason"]["text"] == f"Away until next month {uid}"
    shown = browser.get(page).text
    assert f"Away until next month {uid}" in shown.split('class="status-reason"', 1)[1][:200]
    assert "status in-progress → on-hold" in shown


def test_a_completed_task_stays_reachable_and_takes_notes(dev, client, world, uid):
    page, base = paths(world)
    browser = Browser(dev, world["coordinator"])
    for target, extra in (
        ("accepted", {}),
        ("in-progress", {}),
        ("completed", {"outcome": f"Attended {uid}"}),
    ):
        answer = browser.post(f"{base}/status", {"to": target, **extra}, browser.form(page, f"{base}/status"))
        assert answer.status_code == 303, answer.text
    task = client.read_reference(world["task"])
    assert task["status"] == "completed"
    assert any(o.get("valueCodeableConcept", {}).get("text") == f"Attended {uid}" for o in task["output"])
    closed = browser.get(page)
    assert closed.status_code == 200 and 'name="to"' not in closed.text and f"Attended {uid}" in closed.text
    noted = browser.post(f"{base}/note", {"note": f"Thanked us {uid}"}, browser.form(page, f"{base}/note"))
    assert noted.status_code == 303
    after = client.read_reference(world["task"])
    assert after["status"] == "completed" and after["note"][-1]["text"] == f"Thanked us {uid}"


def test_refusals_land_on_their_field_in_plain_words(dev, client, world, uid):
    page, base = paths(world)
    browser = Browser(dev, world["coordinator"])
    before = client.read_reference(world["task"])["meta"]["versionId"]
    long = browser.post(f"{base}/note", {"note": "x" * 5000}, browser.form(page, f"{base}/note"))
    assert long.status_code == 422
    at_field = long.text.split('id="note-err"', 1)[1].split("</p>", 1)[0]
    assert "at most 4,000 characters" in at_field
    banner = long.text.split('class="problem"', 1)[1].split("</div>", 1)[0]
    assert "Not done" in banner and "x" * 50 not in banner and "$." not in banner and "Task/" not in banner
    assert 'class="flash"' not in long.text
    assert client.read_reference(world["task"])["meta"]["versionId"] == before


def test_another_patients_task_is_not_shown_under_this_patient(dev, client, world, uid):
    other = basics(client, uid + "o")["patient"].split("/")[1]
    answer = requests.get(f"{dev.url}/patients/{other}/tasks/{world['task'].split('/')[1]}", timeout=30)
    assert answer.status_code == 404


def test_the_move_a_task_form_offers_only_the_legal_next_statuses(dev, client, world):
    run("task", {"task": world["task"], "to": "accepted", "actor": world["coordinator"]}, client)
    pid = world["patient"].split("/")[1]
    html = requests.get(f"{dev.url}/patients/{pid}/do/task", params={"task": world["task"]}, timeout=30).text
    select = html.split('name="to"', 1)[1].split("</select>", 1)[0]
    assert re.findall(r'<option value="([^"]+)"', select) == ["ready", "in-progress", "cancelled"]


def test_a_person_with_a_role_is_offered_once(dev, client, world, uid):
    from tests.support.cases import make

    person = make(
        client, {"resourceType": "Practitioner", "name": [{"family": f"Once{uid}", "given": ["Jo"]}]}
    )
    role = make(
        client,
        {
            "resourceType": "PractitionerRole",
            "practitioner": {"reference": person},
            "code": [{"text": "Care coordinator"}],
        },
    )
    pid = world["patient"].split("/")[1]
    html = requests.get(f"{dev.url}/patients/{pid}/do/follow-up", timeout=30).text
    owner = html.split('name="owner"', 1)[1].split("</select>", 1)[0]
    if f'value="{person}"' in owner:  # the picker's first page holds this person (a busy server may not)
        assert f'value="{role}"' not in owner
        assert owner.count(f"Jo Once{uid}") == 1 and f"Jo Once{uid} (Care coordinator)" in owner


def test_one_per_person_folds_a_role_into_its_practitioner():
    from fhircare.web.form_context import one_per_person

    rows = [
        {
            "reference": "PractitionerRole/r1",
            "label": "Jo Once (Care coordinator)",
            "person": "Practitioner/p1",
        },
        {"reference": "PractitionerRole/r2", "label": "Al Two (Nurse)", "person": "Practitioner/p9"},
        {"reference": "Practitioner/p1", "label": "Jo Once"},
    ]
    assert one_per_person(rows) == [
        {"reference": "PractitionerRole/r2", "label": "Al Two (Nurse)", "person": "Practitioner/p9"},
        {"reference": "Practitioner/p1", "label": "Jo Once (Care coordinator)"},
    ]
    assert rows[2]["label"] == "Jo Once"  # the shared rows are left as they were
