"""Issue 22, item 3: the patient page tells the story. Referrals (service, partner, status and why, due,
outcome), closed tasks still reachable, and a timeline from the Provenance of every run: who, what, when,
the reason. Compared with what the FHIR server holds."""

from __future__ import annotations

import re

import requests

from fhircare.workflows import run
from tests.support.cases import basics, referral_payload
from tests.support.clock import day


def _section(html: str, marker: str) -> str:
    return html.split(marker, 1)[1].split("</section>", 1)[0]


def test_the_patient_page_shows_referrals_closed_tasks_and_the_timeline(dev, client, uid):
    b = basics(client, uid)
    me = b["coordinator"]
    task = next(r for r in run("refer", referral_payload(b, uid), client).written if r.startswith("Task/"))
    for step in ("accepted", "in-progress"):
        run("task", {"task": task, "to": step, "actor": me}, client)
    run("task", {"task": task, "to": "on-hold", "reason": f"In hospital {uid}", "actor": me}, client)
    pid = b["patient"].split("/")[1]

    page = requests.get(f"{dev.url}/patients/{pid}", timeout=30).text
    referrals = _section(page, 'id="refs"')
    row = referrals.split(f'data-referral="{task}"', 1)[1].split("</tr>", 1)[0]
    assert "Diabetes education" in row and "Program" in row and day(22) in row
    assert "on-hold" in row and f"In hospital {uid}" in row and "pending" in row

    open_task = _section(page, 'id="tasks"').split(f'data-task="{task}"', 1)[1].split("</li>", 1)[0]
    assert f"on-hold: In hospital {uid}" in open_task and "Last note" in open_task

    timeline = _section(page, 'id="story"')
    assert timeline.count("<tr data-workflow=") == 4  # refer, three moves
    newest = timeline.split("<tr data-workflow=", 2)[1]
    assert newest.startswith('"task"') and f"In hospital {uid}" in newest and "Coord" in newest
    assert 'data-workflow="refer"' in timeline

    run("task", {"task": task, "to": "in-progress", "actor": me}, client)
    run(
        "task", {"task": task, "to": "completed", "actor": me, "outcome": {"note": f"Attended {uid}"}}, client
    )
    after = requests.get(f"{dev.url}/patients/{pid}", timeout=30).text
    row = _section(after, 'id="refs"').split(f'data-referral="{task}"', 1)[1].split("</tr>", 1)[0]
    assert "completed" in row and f"Attended {uid}" in row
    closed = _section(after, 'id="closed"')
    assert f'data-task="{task}"' in closed and f"/tasks/{task.split('/')[1]}" in closed

    # the server holds one Provenance per run, each naming this patient and the acting coordinator
    runs = list(client.search("Provenance", {"entity": b["patient"]}))
    assert len(runs) == _section(after, 'id="story"').count("<tr data-workflow=") == 6
    assert sum(1 for p in runs if p["agent"][0]["who"].get("reference") == me) == 6


def test_authorizations_are_filtered_by_a_coordinator_by_name_and_badges_say_good_or_bad(dev, client, uid):
    from tests.integration.test_prior_auth_decision import _pas_response
    from tests.support.cases import make, prior_auth_case

    payload = prior_auth_case(client, uid).payload
    me = make(client, {"resourceType": "Practitioner", "name": [{"family": f"Coord{uid}"}]})
    written = run("prior-auth", {**payload, "provider": me}, client).written
    task = next(r for r in written if r.startswith("Task/"))
    claim = next(r for r in written if r.startswith("Claim/"))
    make(client, _pas_response(payload["patient"], claim, "A1", number=f"OK-{uid}"))
    page = requests.get(f"{dev.url}/authorizations", params={"requester": me}, timeout=30).text
    picker = page.split('<select id="requester"', 1)[1].split("</select>", 1)[0]
    # no "Practitioner/123"-style id asked for (a real id may start with 123: Medplum's are UUIDs)
    assert f'value="{me}" selected>' in picker and f"Coord{uid}" in picker
    assert not re.search(r"Practitioner/123(?![0-9a-f-])", page)
    row = page.split(f'data-task="{task}"', 1)[1].split("</tr>", 1)[0]
    assert 'class="badge ok" data-decision="approved">Approved<' in row
    summary = requests.get(f"{dev.url}/patients/{payload['patient'].split('/')[1]}", timeout=30).text
    assert 'class="badge ok" data-decision="approved">Approved<' in summary


def test_after_a_coverage_check_the_page_says_it_awaits_the_payer_then_shows_the_answer(dev, client, uid):
    import re as regex

    from tests.support.cases import coverage_case, make

    payload = coverage_case(client, uid).payload
    pid = payload["patient"].split("/")[1]
    browser = requests.Session()
    form = browser.get(f"{dev.url}/patients/{pid}/do/coverage-check").text
    hidden = dict(regex.findall(r'<input type="hidden" name="(csrf|request_id)" value="([^"]+)"', form))
    data = {k: v for k, v in payload.items() if k != "patient"}
    sent = browser.post(f"{dev.url}/patients/{pid}/do/coverage-check", data={**hidden, **data})
    assert sent.status_code == 200 and "Check coverage: done" in sent.text
    coverage = next(iter(client.search("Coverage", {"beneficiary": payload["patient"]})))
    ref = f"Coverage/{coverage['id']}"
    item = sent.text.split(f'data-coverage="{ref}"', 1)[1].split("</li>", 1)[0]
    assert "eligibility asked" in item and "awaiting the payer" in item
    request = next(iter(client.search("CoverageEligibilityRequest", {"patient": payload["patient"]})))
    make(
        client,
        {
            "resourceType": "CoverageEligibilityResponse",
            "status": "active",
            "purpose": ["validation"],
            "patient": {"reference": payload["patient"]},
            "created": request["created"],
            "request": {"reference": f"CoverageEligibilityRequest/{request['id']}"},
            "insurer": {"reference": payload["payor"]},
            "outcome": "complete",
            "disposition": "Policy is currently in effect",
            "insurance": [{"coverage": {"reference": ref}, "inforce": True}],
        },
    )
    answered = requests.get(f"{dev.url}/patients/{pid}", timeout=30).text
    item = answered.split(f'data-coverage="{ref}"', 1)[1].split("</li>", 1)[0]
    assert "eligibility: complete" in item and "awaiting" not in item
