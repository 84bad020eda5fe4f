"""Issue 22 item 5: every *Complete* in the console asks what was done and can be undone. A task with no
patient (an administrative task) has its own page, ``/tasks/<id>``, with the same outcome form and undo
banner as a patient's task; the worklist offers no one-click completion for any row; an old one-click
POST opens the task's page instead of closing it; *Move a task* completing a task lands on its page
with the undo banner. Through the real sidecar, checked on the FHIR server, on both servers."""

from __future__ import annotations

import re

import pytest

from fhircare.workflows import run
from tests.integration.test_console_tasks import Browser
from tests.support.cases import basics, referral_payload
from tests.support.clock import day


def _loose_task(client, uid: str, patient: str | None = None) -> dict[str, str]:
    """A task in progress owned by the coordinator, for no patient of ours (``patient``: an absolute
    reference to a patient on another organization's server, as a partner's incoming referral names)."""
    b = basics(client, uid)
    task = {
        "resourceType": "Task",
        "status": "in-progress",
        "intent": "order",
        "description": f"Renew the fax line contract {uid}",
        "owner": {"reference": b["coordinator"]},
        "restriction": {"period": {"end": day(1)}},
    }
    if patient:
        task["for"] = {"reference": patient}
    return {**b, "task": f"Task/{client.create(task)['id']}"}


@pytest.fixture()
def admin_task(client, uid) -> dict[str, str]:
    """An administrative task (no patient) in progress, owned by the coordinator."""
    return _loose_task(client, uid)


@pytest.fixture(params=["administrative", "a partner's patient"])
def loose_task(request, client, uid) -> dict[str, str]:
    """A task with no patient of ours: administrative, or for a patient on a partner's server."""
    if request.param == "administrative":
        return _loose_task(client, uid)
    return _loose_task(client, uid, "https://partner.invalid/fhir/Patient/p1")


def _row(html: str, task: str) -> str:
    return html.split(f'data-task="{task}"', 1)[1].split("</tr>", 1)[0]


def test_a_task_with_no_patient_is_completed_with_an_outcome_and_can_be_undone(dev, client, loose_task, uid):
    task, tid = loose_task["task"], loose_task["task"].split("/")[1]
    browser = Browser(dev, loose_task["coordinator"])
    row = _row(browser.get("/").text, task)
    assert 'value="complete"' not in row  # no one-click completion
    link = re.search(r'<a class="button" href="([^"]+)"[^>]*>Complete…</a>', row)
    assert link and link.group(1) == f"/tasks/{tid}?to=completed#status-h"
    page = f"/tasks/{tid}"
    shown = browser.get(f"{page}?to=completed")
    assert shown.status_code == 200 and 'name="outcome"' in shown.text
    assert re.search(r'name="to" value="completed" checked', shown.text)
    assert client.read_reference(task)["status"] == "in-progress"  # opening the form wrote nothing

    hidden = browser.form(page, f"{page}/status")
    done = browser.post(f"{page}/status", {"to": "completed", "outcome": f"Signed for a year {uid}"}, hidden)
    assert done.status_code == 303 and done.headers["Location"] == page
    completed = client.read_reference(task)
    assert completed["status"] == "completed"
    assert any(f"Signed for a year {uid}" in n["text"] for n in completed.get("note") or [])
    after = browser.get(page).text
    banner = after.split("data-undo-banner>", 1)[1].split("</div>", 1)[0]
    assert f"Task completed: “Renew the fax line contract {uid}”" in banner and ">Undo</button>" in banner
    assert f'action="{page}/undo"' in banner

    undo = browser.form(page, f"{page}/undo")
    undo["version"] = completed["meta"]["versionId"]
    undone = browser.post(f"{page}/undo", {}, undo)
    assert undone.status_code == 303, undone.text
    assert client.read_reference(task)["status"] == "in-progress"
    assert "Completion undone" in browser.get(page).text


def test_no_row_of_the_worklist_completes_in_one_click(dev, client, admin_task, uid):
    written = run("refer", referral_payload(admin_task, uid), client).written
    referral = next(r for r in written if r.startswith("Task/"))
    me = admin_task["coordinator"]
    for status in ("accepted", "in-progress"):
        run("task", {"task": referral, "to": status, "actor": me}, client)
    run("task", {"task": referral, "owner": me, "actor": me}, client)  # on my worklist too
    browser = Browser(dev, me)
    html = browser.get("/").text
    for task in (admin_task["task"], referral):
        assert ">Complete…</a>" in _row(html, task)
    assert 'value="complete"' not in html


@pytest.mark.parametrize("with_patient", [False, True])
def test_an_old_one_click_complete_opens_the_tasks_page_and_writes_nothing(
    dev, client, admin_task, uid, with_patient
):
    task = admin_task["task"]
    if with_patient:
        written = run("refer", referral_payload(admin_task, uid), client).written
        task = next(r for r in written if r.startswith("Task/"))
    tid = task.split("/")[1]
    browser = Browser(dev, admin_task["coordinator"])
    before = client.read_reference(task)["meta"]["versionId"]
    answer = browser.post(f"/tasks/{tid}/action", {"action": "complete"}, browser.form("/"))
    assert answer.status_code == 303
    pid = admin_task["patient"].split("/")[1]
    page = f"/patients/{pid}/tasks/{tid}" if with_patient else f"/tasks/{tid}"
    assert answer.headers["Location"] == f"{page}?to=completed#status-h"
    assert client.read_reference(task)["meta"]["versionId"] == before


def test_move_a_task_completing_lands_on_the_tasks_page_with_undo(dev, client, admin_task, uid):
    written = run("refer", referral_payload(admin_task, uid), client).written
    task = next(r for r in written if r.startswith("Task/"))
    for status in ("accepted", "in-progress"):
        run("task", {"task": task, "to": status, "actor": admin_task["coordinator"]}, client)
    pid, tid = admin_task["patient"].split("/")[1], task.split("/")[1]
    browser = Browser(dev, admin_task["coordinator"])
    form = f"/patients/{pid}/do/task?task={task}"
    hidden = browser.form(form, f"/patients/{pid}/do/task")
    done = browser.post(
        f"/patients/{pid}/do/task",
        {"task": task, "to": "completed", "outcome.note": f"Attended {uid}"},
        hidden,
    )
    assert done.status_code == 303, done.text
    assert done.headers["Location"] == f"/patients/{pid}/tasks/{tid}"
    completed = client.read_reference(task)
    assert completed["status"] == "completed"
    assert [o.get("valueCodeableConcept", {}).get("text") for o in completed["output"]] == [f"Attended {uid}"]
    banner = browser.get(done.headers["Location"]).text.split("data-undo-banner>", 1)[1].split("</div>", 1)[0]
    assert "Task completed:" in banner and f"Case{uid}" in banner and ">Undo</button>" in banner


def test_a_patients_task_under_the_address_without_a_patient_is_404(dev, client, admin_task, uid):
    written = run("refer", referral_payload(admin_task, uid), client).written
    tid = next(r for r in written if r.startswith("Task/")).split("/")[1]
    browser = Browser(dev, admin_task["coordinator"])
    answer = browser.get(f"/tasks/{tid}")
    assert answer.status_code == 404 and 'role="alert"' in answer.text and f"Case{uid}" not in answer.text
