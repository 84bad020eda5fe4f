"""Issue 22, item 2: a completed referral's outcome said in words on the task page and the patient page
(what was done, when in the coordinator's zone, by whom, and that a copied outcome came from the
partner), read in the batch the page already makes; the task's story names the partner for versions
sync applied, with the partner's version and reason. Through the real sidecar, checked on the server."""

from __future__ import annotations

import requests

from fhircare.settings import Settings
from fhircare.workflows import run
from tests.integration.sidecar_harness import Sidecar
from tests.support.cases import basics, make, referral_payload
from tests.support.clock import at


def _procedure(client, b, uid, request, **extra):
    return make(
        client,
        {
            "resourceType": "Procedure",
            "status": "completed",
            "subject": {"reference": b["patient"]},
            "basedOn": [{"reference": request}],
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "6142004", "display": "x"}]}
            | {"text": f"Diabetes class attended {uid}"},
            "performedDateTime": at(-1, "14:30"),
            "performer": [{"actor": {"reference": b["coordinator"]}}],
            **extra,
        },
    )


def _completed_referral(client, b, uid, outputs=1, **procedure_extra):
    written = run("refer", referral_payload(b, uid), client).written
    task = next(r for r in written if r.startswith("Task/"))
    request = next(r for r in written if r.startswith("ServiceRequest/"))
    me = b["coordinator"]
    for step in ("accepted", "in-progress"):
        run("task", {"task": task, "to": step, "actor": me}, client)
    procedure = _procedure(client, b, uid, request, **procedure_extra)
    run("task", {"task": task, "to": "completed", "actor": me, "outcome": {"reference": procedure}}, client)
    extra = []
    if outputs > 1:  # more outcomes, each performed by someone else
        found = client.read_reference(task)
        for n in range(outputs - 1):
            person = make(client, {"resourceType": "Practitioner", "name": [{"family": f"Nurse{n}{uid}"}]})
            more = _procedure(client, b, f"{uid}-{n}", request, performer=[{"actor": {"reference": person}}])
            extra.append(more)
            found["output"].append(
                {"type": found["output"][0]["type"], "valueReference": {"reference": more}}
            )
        client.update(found, if_match=found["meta"]["versionId"])
    return task, procedure, extra


def _outcome(page: str) -> str:
    return page.split('<dd class="outcome">', 1)[1].split("</dd>", 1)[0]


def test_the_task_page_says_what_was_done_when_and_by_whom(fhir_server, client, uid, server_requests):
    b = basics(client, uid)
    task, procedure, _ = _completed_referral(client, b, uid)
    pid, tid = b["patient"].split("/")[1], task.split("/")[1]
    with Sidecar(Settings(base_url=fhir_server.base_url, timezone="America/Chicago")) as dev:
        before = server_requests()
        page = requests.get(f"{dev.url}/patients/{pid}/tasks/{tid}", timeout=30).text
        cost = server_requests() - before
        outcome = _outcome(page)
        assert f"Diabetes class attended {uid}" in outcome
        assert "08:30 CST" in outcome  # 14:30 UTC the day before, in the coordinator's zone
        assert "Coord" in outcome and procedure not in page
        assert "from the partner" not in outcome
        assert cost <= 5, cost

        summary = requests.get(f"{dev.url}/patients/{pid}", timeout=30).text
        row = summary.split(f'data-referral="{task}"', 1)[1].split("</tr>", 1)[0]
        assert f"Diabetes class attended {uid}" in row and "08:30 CST" in row and "Coord" in row
        assert procedure not in row


def test_outcomes_by_people_the_page_did_not_name_cost_one_batch_whatever_their_number(
    fhir_server, client, uid, server_requests
):
    b = basics(client, uid)
    tasks = [_completed_referral(client, b, f"{uid}{n}", outputs=n) for n in (1, 3, 6)]
    pid = b["patient"].split("/")[1]
    with Sidecar(Settings(base_url=fhir_server.base_url)) as dev:
        costs, pages = [], []
        for task, _, _ in tasks:
            before = server_requests()
            pages.append(
                requests.get(f"{dev.url}/patients/{pid}/tasks/{task.split('/')[1]}", timeout=30).text
            )
            costs.append(server_requests() - before)
        before = server_requests()
        summary = requests.get(f"{dev.url}/patients/{pid}", timeout=30).text
        summary_cost = server_requests() - before
    # one outcome by the coordinator the page names anyway: what the page cost before it said outcomes
    # (4: the Task's history with its Provenance, the people and what it names, the patient's card, the
    # session); outcomes by others: one batch more, for 2 or for 5 of them
    assert costs[1] == costs[2] == costs[0] + 1, costs
    for (task, _, more), page in zip(tasks[1:], pages[1:], strict=True):
        outcome = _outcome(page)
        n = len(more)
        assert all(f"Nurse{k}{uid}{n + 1}" in outcome for k in range(n)) and not any(m in page for m in more)
        row = summary.split(f'data-referral="{task}"', 1)[1].split("</tr>", 1)[0]
        assert all(f"Nurse{k}{uid}{n + 1}" in row for k in range(n))
    assert summary_cost > 0


def test_partner_text_in_an_outcome_is_escaped(fhir_server, client, uid):
    b = basics(client, uid)
    hostile = f"<script>alert('{uid}')</script>"
    task, _, _ = _completed_referral(
        client, b, uid, code={"text": hostile}, performer=[{"actor": {"display": hostile}}]
    )
    with Sidecar(Settings(base_url=fhir_server.base_url)) as dev:
        page = requests.get(
            f"{dev.url}/patients/{b['patient'].split('/')[1]}/tasks/{task.split('/')[1]}", timeout=30
        )
        summary = requests.get(f"{dev.url}/patients/{b['patient'].split('/')[1]}", timeout=30)
    for text in (page.text, summary.text):
        assert hostile not in text and f"&lt;script&gt;alert(&#39;{uid}&#39;)&lt;/script&gt;" in text


# the two organizations of the exchange tests: ours (embedded) and the partner's (on each suite server)
from tests.exchange.conftest import our_server, partner_server, proxy, world  # noqa: E402,F401


def _rows(page: str) -> list[str]:
    story = page.split('id="changes-h"', 1)[1].split("</table>", 1)[0]
    return story.split("<tr data-version=")[1:]


def test_versions_sync_applied_are_the_partners_with_their_version_and_reason(our_server, world):  # noqa: F811
    from fhircare.exchange import sync_once, work

    task_id, _ = world.refer()
    sync_once(world.exchange, world.partner)  # sends it
    remote = world.remote_of(task_id)["id"]
    work(world.theirs, remote, "accepted")
    work(world.theirs, remote, "in-progress")
    work(world.theirs, remote, "on-hold", reason="<b>Waiting</b> for a slot")
    work(world.theirs, remote, "in-progress")
    work(world.theirs, remote, "completed", outcome="Enrolled <i>in</i> the pantry")
    assert sync_once(world.exchange, world.partner)["partners"][world.partner]["applied"] == 5
    org_name = world.ours.read_reference(world.org)["name"]
    pid = world.patient.split("/")[1]
    with Sidecar(Settings(base_url=our_server.base_url)) as dev:
        page = requests.get(f"{dev.url}/patients/{pid}/tasks/{task_id}", timeout=30).text
        summary = requests.get(f"{dev.url}/patients/{pid}", timeout=30).text
    rows = _rows(page)
    synced = [r for r in rows if f"{org_name} (partner), via sync" in r]
    assert len(synced) == 5, rows
    assert "someone outside fhircare" not in page
    assert all("the partner's version" in r for r in synced)
    hold = next(r for r in synced if "→ on-hold" in r)
    assert "&lt;b&gt;Waiting&lt;/b&gt; for a slot" in hold and "<b>Waiting" not in page
    assert f'title="{world.proxy.base_url}/Task/{remote}/_history/' in hold
    created = rows[-1]
    assert "created (requested)" in created and "Coord" in created
    outcome = _outcome(page)
    assert "Enrolled &lt;i&gt;in&lt;/i&gt; the pantry" in outcome and "from the partner" in outcome
    assert org_name in outcome and "Procedure/" not in outcome
    row = summary.split(f'data-referral="Task/{task_id}"', 1)[1].split("</tr>", 1)[0]
    assert "Enrolled &lt;i&gt;in&lt;/i&gt; the pantry" in row and "from the partner" in row


def test_the_patients_timeline_shows_the_partners_progress_with_their_reason(our_server, world):  # noqa: F811
    from fhircare.exchange import sync_once, work

    task_id, _ = world.refer()
    sync_once(world.exchange, world.partner)
    remote = world.remote_of(task_id)["id"]
    org_name = world.ours.read_reference(world.org)["name"]
    address = f"/patients/{world.patient.split('/')[1]}"
    with Sidecar(Settings(base_url=our_server.base_url)) as dev:
        requests.get(f"{dev.url}{address}", timeout=30)  # what the sidecar learns once about the server
        before = our_server.counter.count
        requests.get(f"{dev.url}{address}", timeout=30)  # sent, nothing applied from the partner yet
        unsynced = our_server.counter.count - before
        for step in ("accepted", "in-progress"):
            work(world.theirs, remote, step)
        work(world.theirs, remote, "on-hold", reason="<b>At capacity</b> this month")
        assert sync_once(world.exchange, world.partner)["partners"][world.partner]["applied"] == 3
        before = our_server.counter.count
        page = requests.get(f"{dev.url}{address}", timeout=30).text
        synced = our_server.counter.count - before
    assert synced == unsynced + 1  # the partners and the moved Task's history: one batch, for 3 moves
    story = page.split('id="story"', 1)[1].split("</section>", 1)[0]
    rows = story.split("<tr data-workflow=")[1:]
    assert len(rows) == 4, rows  # the referral, then the partner's three moves
    newest = rows[0]
    assert f"{org_name} (partner), via sync" in newest and "status in-progress → on-hold" in newest
    assert "&lt;b&gt;At capacity&lt;/b&gt; this month" in newest and "<b>At capacity" not in page
    assert all("(partner), via sync" in r for r in rows[:3]) and "status requested → accepted" in rows[2]
    assert "Refer to a service" in rows[3]
