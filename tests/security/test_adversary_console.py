"""Adversary review of the console pages: every check an API route makes, the page makes too.

CSRF on every POST the pages serve, HTML escaping of what a partner writes (a statusReason, a
Procedure's text, the names read through absolute references in the incoming worklist), and a patient
session kept to its patient when one of its Tasks names another patient's resource. Real servers
(ours and a partner's, tests/exchange/conftest.py; the attack suite's SMART server and patients A and
B, tests/security/conftest.py) and the sidecar over real HTTP.

Tests marked ``xfail(strict=True)`` prove a defect found today; the plain tests are attacks that held.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import requests

from fhircare.exchange import send, sync_once, work
from fhircare.exchange.links import URL_SYSTEM
from fhircare.settings import Settings
from fhircare.workflows import run
from tests.exchange.conftest import (  # noqa: F401 - the two-organization fixtures, used here too
    World,
    our_server,
    partner_server,
    proxy,
    world,
)
from tests.faults.proxy import FaultProxy
from tests.integration.sidecar_harness import Sidecar
from tests.security.conftest import csrf_of, login, snapshot
from tests.support.cases import basics, referral_payload
from tests.support.clock import day

XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>'
ESCAPED = "&lt;script&gt;alert("


def _no_raw_markup(html: str) -> None:
    assert "<script>alert" not in html and "<img src=x" not in html, "partner text rendered as HTML"


# --- CSRF on every POST of the pages ----------------------------------------------------------------


def _filled(rule: Any, values: dict[str, str]) -> str:
    return re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", lambda m: values[m.group(1)], rule.rule)


def test_every_page_post_refuses_a_missing_or_wrong_csrf_token_and_writes_nothing(
    fhir_server: Any, client: Any, uid: str
) -> None:
    """Held: every POST route outside the JSON API (the API needs ``application/json``, which a
    cross-site form cannot send) answers 400 without the session's CSRF token, and nothing is written."""
    b = basics(client, uid)
    written = run("refer", referral_payload(b, uid), client).written
    task = next(r for r in written if r.startswith("Task/"))
    values = {
        "patient_id": b["patient"].split("/")[1],
        "task_id": task.split("/")[1],
        "workflow": "follow-up",
    }
    with Sidecar(Settings(base_url=fhir_server.base_url)) as dev:
        posts = [
            r
            for r in dev.app.url_map.iter_rules()
            if "POST" in (r.methods or set()) and not r.endpoint.startswith(("api.", "exchange_api."))
        ]
        assert len(posts) >= 8, [r.rule for r in posts]
        browser = requests.Session()
        browser.get(f"{dev.url}/patients/{values['patient_id']}", timeout=30)  # a session with a token
        versions = snapshot(client, [task, b["patient"], b["plan"]])
        counts = fhir_server.resource_counts()
        form = {
            "note": "forged",
            "to": "cancelled",
            "status": "cancelled",
            "reason": "forged",
            "action": "complete",
            "me": b["coordinator"],
            "patient": b["patient"],
            "owner": b["coordinator"],
            "due": "",
        }
        for rule in posts:
            url = f"{dev.url}{_filled(rule, values)}"
            for token in ({}, {"csrf": "forged-token"}):
                answer = browser.post(url, data={**form, **token}, allow_redirects=False, timeout=30)
                assert answer.status_code == 400, (rule.rule, token, answer.status_code)
        assert fhir_server.resource_counts() == counts
        assert snapshot(client, [task, b["patient"], b["plan"]]) == versions


# --- what a partner writes, as the pages show it ------------------------------------------------------


@pytest.fixture()
def partner_console(world: World) -> Any:  # noqa: F811 - the imported fixture
    settings = Settings(
        base_url=world.ours.base_url, partners_file=world.partners_file, retries=1, backoff_factor=0.01
    )
    with Sidecar(settings) as running:
        yield running


def test_a_partners_status_reason_and_outcome_are_escaped_on_the_patient_and_task_pages(
    world: World,  # noqa: F811 - the imported fixture
    partner_console: Sidecar,
) -> None:
    """Held: a rejection reason and a completion's Procedure text written by the partner reach the
    referrals section, the open tasks and the task page as text, never as markup."""
    rejected, _ = world.refer("to be rejected")
    done, _ = world.refer("to be completed")
    for task_id in (rejected, done):
        send(world.exchange, task_id)
    work(world.theirs, world.remote_of(rejected)["id"], "rejected", reason=f"Reason {XSS}")
    remote = world.remote_of(done)["id"]
    for status in ("accepted", "in-progress"):
        work(world.theirs, remote, status)
    work(world.theirs, remote, "completed", outcome=f"Outcome {XSS}")
    sync_once(world.exchange, world.partner)
    assert world.ours.read("Task", done)["status"] == "completed"
    patient_id = world.patient.split("/")[1]
    page = requests.get(f"{partner_console.url}/patients/{patient_id}", timeout=60)
    assert page.status_code == 200
    _no_raw_markup(page.text)
    assert page.text.count(ESCAPED) >= 2  # both texts are shown, escaped
    for task_id in (rejected, done):
        task_page = requests.get(f"{partner_console.url}/patients/{patient_id}/tasks/{task_id}", timeout=60)
        assert task_page.status_code == 200
        _no_raw_markup(task_page.text)
        if task_id == rejected:  # the task page shows the reason (its outcome is named by reference)
            assert ESCAPED in task_page.text


def _incoming(w: World, patient_url: str, requester_url: str, description: str) -> str:
    """A referral Task another organization created on our server (its identifier names its own Task)."""
    created = w.ours.create(
        {
            "resourceType": "Task",
            "status": "requested",
            "intent": "order",
            "identifier": [
                {"system": URL_SYSTEM, "value": f"{w.proxy.base_url}/Task/origin-{description[:8]}"}
            ],
            "for": {"reference": patient_url},
            "requester": {"reference": requester_url},
            "description": description,
        }
    )
    return f"Task/{created['id']}"


def test_incoming_referrals_names_read_from_the_partner_are_escaped_and_a_third_server_is_never_asked(
    world: World,  # noqa: F811 - the imported fixture
    partner_console: Sidecar,
) -> None:
    """Held: on the Team tab, the patient's and requester's names read through absolute references on
    the partner's server, and the Task's description, are text; the partner's patient is never linked to
    a patient page here; a reference to a server that is no partner's is not read at all."""
    patient = world.theirs.create({"resourceType": "Patient", "name": [{"family": f"Fam {XSS}"}]})
    org = world.theirs.create({"resourceType": "Organization", "name": f"Org {XSS}"})
    base = world.proxy.base_url
    _incoming(world, f"{base}/Patient/{patient['id']}", f"{base}/Organization/{org['id']}", f"Desc {XSS}")
    with FaultProxy(world.theirs.base_url) as third:
        _incoming(
            world, f"{third.base_url}/Patient/{patient['id']}", f"{base}/Organization/{org['id']}", "third"
        )
        page = requests.get(f"{partner_console.url}/", params={"tab": "team"}, timeout=60)
        assert third.log.seen == []
    assert page.status_code == 200
    _no_raw_markup(page.text)
    assert page.text.count(ESCAPED) >= 1 and "Fam &lt;script&gt;" in page.text
    assert f"/patients/{patient['id']}" not in page.text


# --- a patient session and a Task that names another patient's resource -------------------------------


def test_a_patient_page_never_shows_another_patients_procedure_its_referral_names(
    sidecar: Any, auth: Any, client: Any, records: Any
) -> None:
    """Held (the console side of the sync defect in test_adversary_exchange.py): A's referral Task whose
    output names B's Procedure - what a hostile partner's output makes today - shows nothing of it in
    A's patient session, on the patient page or the task page."""
    a, b = records
    secret = "Bravo's confidential procedure"
    procedure = client.create(
        {
            "resourceType": "Procedure",
            "status": "completed",
            "code": {"text": secret},
            "subject": {"reference": b.patient},
        }
    )
    task = client.read_reference(a.task)
    task["status"] = "completed"
    task["output"] = [
        {
            "type": {"text": "resulting-activity"},
            "valueReference": {"reference": f"Procedure/{procedure['id']}"},
        }
    ]
    client.update(task)
    browser = login(sidecar, auth, patient=a.patient)
    own = a.patient.split("/")[1]
    page = browser.get(f"{sidecar.url}/patients/{own}", timeout=60)
    assert page.status_code == 200 and secret not in page.text
    task_page = browser.get(f"{sidecar.url}/patients/{own}/tasks/{a.task.split('/')[1]}", timeout=60)
    assert task_page.status_code == 200 and secret not in task_page.text
    csrf_of(browser, sidecar, f"/patients/{own}")  # the page still serves its forms


# --- the pages' POSTs in a patient session, aimed at the other patient -------------------------------


def test_a_patient_session_posting_a_form_under_another_patients_address_learns_and_writes_nothing(
    sidecar: Any, auth: Any, client: Any, fhir_server: Any, records: Any, uid: str
) -> None:
    """Held: the form route's policy is the workflow guard (the path's patient is not checked before the
    view), and a due date in the past makes the view render the form again *before* the run: that
    re-render, for patient B in A's session, is one 403 naming nothing of B; so is a worklist action on
    B's Task."""
    a, b = records
    browser = login(sidecar, auth, patient=a.patient)
    own, other = a.patient.split("/")[1], b.patient.split("/")[1]
    token = csrf_of(browser, sidecar, f"/patients/{own}")
    watched = [b.task, b.referral, b.patient]
    versions, counts = snapshot(client, watched), fhir_server.resource_counts()
    form = {
        "csrf": token,
        "due": day(-3),
        "note": "x",
        "owner": b.basics["coordinator"],
        "about": b.referral,
    }
    for workflow in ("follow-up", "transport"):
        answer = browser.post(f"{sidecar.url}/patients/{other}/do/{workflow}", data=form, timeout=60)
        assert answer.status_code in (403, 404), (workflow, answer.status_code)
        assert f"Bravo{uid}" not in answer.text and "MRN-Bravo" not in answer.text
    action = browser.post(
        f"{sidecar.url}/tasks/{b.task.split('/')[1]}/action",
        data={"csrf": token, "action": "accept", "back": "/"},
        allow_redirects=False,
        timeout=60,
    )
    assert action.status_code == 403
    assert snapshot(client, watched) == versions and fhir_server.resource_counts() == counts


#: every page POST that names a Task: (path under the sidecar, the form, the state of B's Task first)
TASK_POSTS = {
    "note": ("/patients/{own}/tasks/{other}/note", {"note": "posted under the wrong patient"}, "requested"),
    "status": ("/patients/{own}/tasks/{other}/status", {"to": "accepted"}, "requested"),
    "hold": ("/patients/{own}/tasks/{other}/status", {"to": "on-hold", "reason": "wrong"}, "in-progress"),
    "complete": (
        "/patients/{own}/tasks/{other}/status",
        {"to": "completed", "outcome": "wrong"},
        "in-progress",
    ),
    "undo-complete": ("/patients/{own}/tasks/{other}/undo", {}, "completed"),
    "decision": (
        "/patients/{own}/tasks/{other}/decision",
        {"decision": "denied", "said_by": "x", "channel": "phone"},
        "in-progress",
    ),
    "move-a-task form": ("/patients/{own}/do/task", {"task": "{b_task}", "to": "accepted"}, "requested"),
    "reassign form": ("/patients/{own}/do/task", {"task": "{b_task}", "owner": "{b_owner}"}, "requested"),
    "undo form": ("/patients/{own}/do/undo-complete", {"task": "{b_task}"}, "completed"),
    "follow-up about it": ("/patients/{own}/do/follow-up", {"about": "{b_task}", "due": ""}, "requested"),
    "no patient's address": ("/tasks/{other}/note", {"note": "posted under no patient"}, "requested"),
}


@pytest.mark.parametrize("case", TASK_POSTS)
def test_a_task_form_posted_under_another_patients_address_writes_nothing(
    fhir_server: Any, client: Any, uid: str, case: str
) -> None:
    """Held (fixed): every page POST naming a Task checks, before any write, that the Task is the
    address's patient's (none under ``/tasks/``): 404 with a banner in words, naming nothing of B, and
    the server holds exactly what it held."""
    path, form, state = TASK_POSTS[case]
    a = basics(client, uid)
    b = basics(client, uid + "b")
    run("refer", referral_payload(a, uid), client)
    b_task = next(
        r for r in run("refer", referral_payload(b, uid + "b"), client).written if r.startswith("Task/")
    )
    moves = {"requested": [], "in-progress": ["accepted", "in-progress"]}
    for status in moves.get(state, ["accepted", "in-progress", "completed"]):
        run("task", {"task": b_task, "to": status, "actor": b["coordinator"]}, client)
    own, other = a["patient"].split("/")[1], b_task.split("/")[1]
    names = {"own": own, "other": other, "b_task": b_task, "b_owner": a["coordinator"]}
    with Sidecar(Settings(base_url=fhir_server.base_url)) as dev:
        browser = requests.Session()
        assert browser.get(f"{dev.url}/patients/{own}/tasks/{other}", timeout=30).status_code == 404
        token = csrf_of(browser, dev, f"/patients/{own}")
        watched = [b_task, b["patient"]]
        before, counts = snapshot(client, watched), fhir_server.resource_counts()
        answer = browser.post(
            f"{dev.url}{path.format(**names)}",
            data={"csrf": token, **{k: v.format(**names) for k, v in form.items()}},
            allow_redirects=False,
            timeout=30,
        )
        assert snapshot(client, watched) == before, f"{case}: B's task was written"
        assert fhir_server.resource_counts() == counts, case
        assert answer.status_code == 404, (case, answer.status_code)
        assert 'role="alert"' in answer.text and "Nothing was changed." in answer.text
        assert f"Case{uid}b" not in answer.text


# --- who the record says did it ---------------------------------------------------------------------


def _authors(client: Any, task: str) -> set[str]:
    return {
        str((agent.get("who") or {}).get("reference"))
        for p in client.search("Provenance", {"target": task})
        for agent in p.get("agent") or []
    }


def test_a_coordinator_cannot_record_a_colleague_as_the_author_of_their_change(
    sidecar: Any, auth: Any, client: Any, records: Any
) -> None:
    a, b = records
    me, colleague = a.basics["coordinator"], b.basics["coordinator"]
    auth.user = me
    browser = login(sidecar, auth)
    answer = browser.post(
        f"{sidecar.url}/api/v1/tasks/{a.task.split('/')[1]}/transition",
        json={"to": "accepted", "actor": colleague},
        timeout=60,
    )
    assert colleague not in _authors(client, a.task), (
        f"the change is recorded as the colleague's ({answer.status_code})"
    )


def test_a_smart_session_cannot_choose_to_be_a_colleague_on_the_page(
    sidecar: Any, auth: Any, client: Any, records: Any
) -> None:
    a, b = records
    colleague = b.basics["coordinator"]
    auth.user = None  # a token without fhirUser
    browser = login(sidecar, auth)
    token = csrf_of(browser, sidecar, f"/patients/{a.patient.split('/')[1]}")
    browser.post(f"{sidecar.url}/me", data={"csrf": token, "me": colleague}, timeout=30)
    browser.post(
        f"{sidecar.url}/tasks/{a.task.split('/')[1]}/action",
        data={"csrf": token, "action": "accept", "back": "/"},
        allow_redirects=False,
        timeout=60,
    )
    assert colleague not in _authors(client, a.task), "the page recorded the colleague as the author"


def test_a_patient_session_reaches_no_task_through_the_address_without_a_patient(
    sidecar: Any, auth: Any, client: Any, fhir_server: Any, records: Any, uid: str
) -> None:
    """Held: ``/tasks/<id>`` (the page of a task with no patient of ours) is no way out of a patient
    session: its patient is the session's, so an administrative Task and B's Task are both refused
    (403 or 404) on the page and its forms, naming nothing of them, and nothing is written."""
    a, b = records
    admin = client.create(
        {
            "resourceType": "Task",
            "status": "in-progress",
            "intent": "order",
            "description": f"Office errand {uid}",
            "owner": {"reference": b.basics["coordinator"]},
        }
    )
    browser = login(sidecar, auth, patient=a.patient)
    token = csrf_of(browser, sidecar, f"/patients/{a.patient.split('/')[1]}")
    watched = [f"Task/{admin['id']}", b.task]
    versions, counts = snapshot(client, watched), fhir_server.resource_counts()
    for task in watched:
        tid = task.split("/")[1]
        page = browser.get(f"{sidecar.url}/tasks/{tid}", timeout=60)
        assert page.status_code in (403, 404), (task, page.status_code)
        for path, form in (
            ("status", {"to": "completed", "outcome": "x"}),
            ("note", {"note": "x"}),
            ("undo", {}),
        ):
            answer = browser.post(
                f"{sidecar.url}/tasks/{tid}/{path}",
                data={"csrf": token, **form},
                allow_redirects=False,
                timeout=60,
            )
            assert answer.status_code in (403, 404), (task, path, answer.status_code)
            assert f"Office errand {uid}" not in answer.text and f"Bravo{uid}" not in answer.text
    assert snapshot(client, watched) == versions and fhir_server.resource_counts() == counts


def test_a_patient_session_finds_no_other_patient_by_any_search_box(
    sidecar: Any, auth: Any, records: Any, uid: str
) -> None:
    """Held: the header's one box (name, birth date, record number read from one string), the three
    fields, and the pickers' lookup: a patient session gets a refusal that names no other patient."""
    a, b = records
    browser = login(sidecar, auth, patient=a.patient)
    probes = [
        ("/patients", {"q": f"Bravo{uid}"}),
        ("/patients", {"q": f"MRN-Bravo{uid}-{uid}b"}),
        ("/patients", {"q": "Pat 1961-02-03"}),
        ("/patients", {"name": f"Bravo{uid}", "birthdate": "1961-02-03"}),
        ("/patients", {"identifier": f"urn:test:mrn|MRN-Bravo{uid}-{uid}b"}),
        ("/api/v1/lookup", {"type": "Patient", "name": f"Bravo{uid}"}),
        ("/api/v1/lookup", {"type": "RelatedPerson", "name": "Kin"}),
    ]
    for path, params in probes:
        answer = browser.get(f"{sidecar.url}{path}", params=params, timeout=30)
        assert answer.status_code in (400, 403, 422), (path, params, answer.status_code)
        assert b.patient.split("/")[1] not in answer.text, (path, params)
