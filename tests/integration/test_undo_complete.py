"""Issue 22 item 5: a completion made by mistake is undone within the undo window, in one transaction
(the Task's status before it, the referral's ServiceRequest active again, a Provenance saying so), and
refused with nothing written after the window, after another change, or for a Task sent to a partner.
Checked on the FHIR server, on both servers."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
import requests
from click.testing import CliRunner

from fhircare import clock
from fhircare.cli.main import cli
from fhircare.errors import ConfigurationError, Conflict, IllegalTransition
from fhircare.exchange.links import Link, write_link
from fhircare.settings import Settings
from fhircare.workflows import get_workflow, run
from tests.integration.test_console_tasks import Browser
from tests.support.cases import basics, referral_payload
from tests.support.clock import moment
from tests.support.servers import versions


@pytest.fixture()
def world(client, uid) -> dict[str, str]:
    b = basics(client, uid)
    written = run("refer", referral_payload(b, uid), client).written
    task = next(r for r in written if r.startswith("Task/"))
    request = next(r for r in written if r.startswith("ServiceRequest/"))
    for status in ("accepted", "in-progress"):
        run("task", {"task": task, "to": status, "actor": b["coordinator"]}, client)
    return {**b, "task": task, "request": request}


def complete(client, world, uid: str) -> None:
    payload = {
        "task": world["task"],
        "to": "completed",
        "actor": world["coordinator"],
        "outcome": {"note": f"Attended the first class {uid}"},
    }
    run("task", payload, client)


def undo_provenances(client, task: str) -> list[dict]:
    found = list(client.search("Provenance", [("target", task), ("_count", "100")]))
    return [p for p in found if any(r.get("text") == "undo completion" for r in p.get("reason") or [])]


def state(client, world) -> tuple[str, str, int, int]:
    task, request = client.read_reference(world["task"]), client.read_reference(world["request"])
    return task["status"], request["status"], versions(client, world["task"]), len(task.get("note") or [])


def test_undo_puts_back_the_status_before_the_completion_and_reopens_the_referral(
    client, world, uid, server_requests, include_batch
):
    complete(client, world, uid)
    done = client.read_reference(world["task"])
    assert done["status"] == "completed" and done["output"]
    assert client.read_reference(world["request"])["status"] == "completed"

    before = server_requests()
    result = run(
        "undo-complete",
        {"task": world["task"], "actor": world["coordinator"], "request_id": f"u-{uid}"},
        client,
    )
    # one read batch (the Task and its focus, its history, its Provenance), one transaction
    assert server_requests() - before == 2 + include_batch == result.requests

    task = client.read_reference(world["task"])
    assert task["status"] == "in-progress"
    assert "output" not in task  # the completion's outcome is withdrawn
    assert "end" not in task.get("executionPeriod", {})
    notes = [n["text"] for n in task["note"]]
    assert notes[-2] == f"Attended the first class {uid}"  # notes are append-only: kept...
    assert notes[-1].startswith("Completion undone: back to in-progress")  # ...and marked
    assert task["note"][-1]["authorReference"]["reference"] == world["coordinator"]
    assert client.read_reference(world["request"])["status"] == "active"
    (provenance,) = undo_provenances(client, world["task"])
    assert provenance["agent"][0]["who"]["reference"] == world["coordinator"]
    assert {t["reference"] for t in provenance["target"]} == {world["task"], world["request"]}
    assert sorted(result.updated) == sorted([world["task"], world["request"]])


def test_the_same_undo_sent_twice_is_one_action(client, world, uid, server_requests, include_batch):
    complete(client, world, uid)
    payload = {"task": world["task"], "actor": world["coordinator"], "request_id": f"u-{uid}"}
    first = run("undo-complete", payload, client)
    count = versions(client, world["task"])
    before = server_requests()
    again = run("undo-complete", payload, client)  # a double submit
    assert again.repeated and not first.repeated
    assert server_requests() - before == 2 + include_batch  # its reads, the earlier run found; no write
    assert versions(client, world["task"]) == count
    assert len(undo_provenances(client, world["task"])) == 1
    assert client.read_reference(world["task"])["status"] == "in-progress"


def test_after_the_window_the_undo_is_refused_and_nothing_is_written(client, world, uid, server_requests):
    with clock.frozen(moment(0, "09:00")):
        complete(client, world, uid)
    unchanged = state(client, world)
    within = Settings().undo_window_minutes
    with clock.frozen(moment(0, "09:00") + timedelta(minutes=within)):
        before = server_requests()
        with pytest.raises(IllegalTransition) as refused:
            run("undo-complete", {"task": world["task"], "actor": world["coordinator"]}, client)
    assert "undo window closed" in refused.value.message and "10 minutes" in refused.value.message
    assert server_requests() - before >= 1  # the reads only
    assert state(client, world) == unchanged == ("completed", "completed", unchanged[2], unchanged[3])
    assert undo_provenances(client, world["task"]) == []


def test_within_the_window_under_a_frozen_clock_the_undo_goes_through(client, world, uid):
    with clock.frozen(moment(0, "09:00")):
        complete(client, world, uid)
    with clock.frozen(moment(0, "09:09")):
        run("undo-complete", {"task": world["task"], "actor": world["coordinator"]}, client)
    assert state(client, world)[:2] == ("in-progress", "active")


def test_a_change_after_the_completion_blocks_the_undo(client, world, uid):
    complete(client, world, uid)
    completed_version = client.read_reference(world["task"])["meta"]["versionId"]
    run("task", {"task": world["task"], "note": "Called the program", "actor": world["coordinator"]}, client)
    unchanged = state(client, world)
    with pytest.raises(Conflict) as refused:
        run("undo-complete", {"task": world["task"], "actor": world["coordinator"]}, client)
    assert "changed after it was completed" in refused.value.message
    with pytest.raises(Conflict):  # naming the version the caller saw completed changes nothing
        run("undo-complete", {"task": world["task"], "version": completed_version}, client)
    assert state(client, world) == unchanged and unchanged[:2] == ("completed", "completed")
    assert undo_provenances(client, world["task"]) == []


def test_a_task_sent_to_a_partner_is_not_undone_here(client, world, uid):
    complete(client, world, uid)  # as sync writes a partner's completion: our coordinator may not, once sent
    task = client.read_reference(world["task"])
    link = Link(partner="partner-a", remote=f"https://partner.example.org/fhir/Task/{uid}")
    client.update(write_link(task, link, Settings().namespace_base))
    unchanged = state(client, world)
    with pytest.raises(IllegalTransition) as refused:
        run("undo-complete", {"task": world["task"], "actor": world["coordinator"]}, client)
    assert "sent to a partner" in refused.value.message
    assert state(client, world) == unchanged


def test_a_task_that_is_not_completed_has_nothing_to_undo(client, world):
    with pytest.raises(IllegalTransition) as refused:
        run("undo-complete", {"task": world["task"]}, client)
    assert "not completed" in refused.value.message
    assert client.read_reference(world["task"])["status"] == "in-progress"


def test_the_cli_undoes_a_completion_and_refuses_a_second_time_with_exit_code_4(
    fhir_server, client, world, uid
):
    complete(client, world, uid)
    base = ["--base", fhir_server.base_url, "undo-complete", world["task"], "--actor", world["coordinator"]]
    done = CliRunner().invoke(cli, base)
    assert done.exit_code == 0, done.output
    assert world["task"] in done.output
    assert client.read_reference(world["task"])["status"] == "in-progress"
    again = CliRunner().invoke(cli, [*base, "--request-id", f"again-{uid}"])
    assert again.exit_code == 4 and "not completed" in again.output


# -- the console ---------------------------------------------------------------------------------


def console_complete(browser, world, uid: str) -> tuple[str, str]:
    """Complete the task from its page with an outcome; (the page's path, the page after the redirect)."""
    pid, tid = world["patient"].split("/")[1], world["task"].split("/")[1]
    page = f"/patients/{pid}/tasks/{tid}"
    hidden = browser.form(page, f"{page}/status")
    sent = browser.post(
        f"{page}/status", {"to": "completed", "outcome": f"Attended the first class {uid}"}, hidden
    )
    assert sent.status_code == 303, sent.text
    return page, browser.get(page).text


def test_the_console_banner_after_complete_offers_undo_and_a_double_submit_is_one_undo(
    dev, client, world, uid
):
    browser = Browser(dev, world["coordinator"])
    page, shown = console_complete(browser, world, uid)
    banner = shown.split("data-undo-banner>", 1)[1].split("</div>", 1)[0]
    assert "Task completed:" in banner and f"Case{uid}" in banner and ">Undo</button>" in banner
    assert ">Undo completion</button>" in shown  # the page offers it too, while the window is open
    hidden = browser.form(page, f"{page}/undo")
    version = re.search(r'name="version" value="([^"]+)"', banner)
    assert version and version.group(1) == client.read_reference(world["task"])["meta"]["versionId"]
    hidden["version"] = version.group(1)
    undone = browser.post(f"{page}/undo", {}, hidden)
    assert undone.status_code == 303, undone.text
    again = browser.post(f"{page}/undo", {}, hidden)  # double submit
    assert again.status_code == 303
    after = browser.get(page).text
    assert 'data-status="in-progress"' in after and "completion undone" in after
    assert state(client, world)[:2] == ("in-progress", "active")
    assert len(undo_provenances(client, world["task"])) == 1


def test_after_the_window_the_task_page_says_so_and_a_late_undo_is_refused(dev, client, world, uid):
    browser = Browser(dev, world["coordinator"])
    with clock.frozen(moment(0, "09:00")):
        page, shown = console_complete(browser, world, uid)
        hidden = browser.form(page, f"{page}/undo")
        hidden["version"] = client.read_reference(world["task"])["meta"]["versionId"]
    unchanged = state(client, world)
    with clock.frozen(moment(0, "09:30")):
        late = browser.get(page).text
        assert "can no longer be undone" in late and ">Undo completion</button>" not in late
        refused = browser.post(f"{page}/undo", {}, hidden)  # a page left open past the window
    assert refused.status_code == 409
    assert "Not undone" in refused.text and "undo window closed at" in refused.text
    assert state(client, world) == unchanged and unchanged[:2] == ("completed", "completed")


# -- the API and the setting -----------------------------------------------------------------------


def test_the_api_undoes_a_completion_and_answers_a_late_one_with_409(dev, client, world, uid):
    with clock.frozen(moment(0, "09:00")):
        complete(client, world, uid)
    url = f"{dev.url}/api/v1/workflows/undo-complete"
    body = {"task": world["task"], "actor": world["coordinator"]}
    with clock.frozen(moment(0, "09:20")):
        late = requests.post(url, json=body, timeout=30)
    assert late.status_code == 409 and late.json()["resourceType"] == "OperationOutcome"
    assert "undo window closed" in json.dumps(late.json())
    assert state(client, world)[:2] == ("completed", "completed")
    with clock.frozen(moment(0, "09:05")):
        done = requests.post(url, json=body, timeout=30)
    assert done.status_code == 201, done.text
    assert world["task"] in done.json()["updated"]
    assert state(client, world)[:2] == ("in-progress", "active")


def test_the_undo_window_is_a_setting(client, world, uid):
    assert Settings.from_env({"FHIRCARE_UNDO_WINDOW_MINUTES": "2"}).undo_window_minutes == 2
    with pytest.raises(ConfigurationError) as wrong:
        Settings.from_env({"FHIRCARE_UNDO_WINDOW_MINUTES": "soon"})
    assert "FHIRCARE_UNDO_WINDOW_MINUTES" in wrong.value.message
    with clock.frozen(moment(0, "09:00")):
        complete(client, world, uid)
    short = get_workflow("undo-complete", client, Settings(undo_window_minutes=2))
    with clock.frozen(moment(0, "09:03")), pytest.raises(IllegalTransition) as refused:
        short.run({"task": world["task"]})
    assert "2 minutes only" in refused.value.message
    assert state(client, world)[:2] == ("completed", "completed")


def test_a_colleague_changing_the_task_while_the_undo_runs_wins_and_nothing_is_written(
    client, world, uid, monkeypatch
):
    from fhircare.workflows.undo_complete import UndoCompletion

    complete(client, world, uid)
    original = UndoCompletion.updates

    def colleague_notes_first(self, state, created):
        planned = original(self, state, created)
        theirs = client.read_reference(world["task"])
        theirs["note"] = [*theirs.get("note", []), {"text": f"Colleague's note {uid}"}]
        client.update(theirs)
        return planned

    monkeypatch.setattr(UndoCompletion, "updates", colleague_notes_first)
    with pytest.raises(Conflict):
        run("undo-complete", {"task": world["task"], "actor": world["coordinator"]}, client)
    task = client.read_reference(world["task"])
    assert task["status"] == "completed" and task["note"][-1]["text"] == f"Colleague's note {uid}"
    assert client.read_reference(world["request"])["status"] == "completed"
    assert undo_provenances(client, world["task"]) == []


def test_a_task_owned_by_a_partner_organization_is_not_undone_here(client, world, uid, tmp_path):
    """The light pattern: the partner's staff set the status of the Tasks their Organization owns on our
    server; the completion is theirs (FHIRCARE_PARTNERS names that Organization)."""
    partners = tmp_path / "partners.yaml"
    partners.write_text(
        "self: {base: https://clinic.example.org/fhir, organization: Organization/clinic}\n"
        f"partners:\n  program:\n    organization: {world['org']}\n    base: https://program.example.org/fhir\n",
        encoding="utf-8",
    )
    complete(client, world, uid)
    unchanged = state(client, world)
    undo = get_workflow("undo-complete", client, Settings(partners_file=partners))
    with pytest.raises(IllegalTransition) as refused:
        undo.run({"task": world["task"], "actor": world["coordinator"]})
    assert "owned by a partner organization" in refused.value.message
    assert state(client, world) == unchanged
