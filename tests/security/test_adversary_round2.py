"""Adversary review, round 2: what the last hour built - undo-complete, the light pattern's guard and the
signed-in actor, the pickers and ``/me``, the task pages' addresses. Real servers (``fhir_server``: the
embedded one and Medplum's router), the sidecar over real HTTP.

Tests marked ``xfail(strict=True)`` prove a defect found today; the plain tests are attacks that held.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
import requests

from fhircare import clock
from fhircare.errors import FhircareError
from fhircare.exchange import send, work
from fhircare.exchange.incoming import incoming
from fhircare.exchange.links import URL_SYSTEM, names_partner
from fhircare.exchange.status import referrals
from fhircare.fhir import FhirClient
from fhircare.server.launcher import free_port
from fhircare.settings import Settings
from fhircare.views.authorizations import authorizations
from fhircare.views.rows import drain
from fhircare.workflows import run
from tests.exchange.conftest import (  # noqa: F401 - the two-organization fixtures, used here too
    World,
    our_server,
    partner_server,
    proxy,
    world,
)
from tests.exchange.test_light_guard import (  # noqa: F401 - the light pattern's world, used here too
    Light,
    _login,
    light,
)
from tests.faults.proxy import FaultProxy
from tests.integration.sidecar_harness import Sidecar, smart_settings
from tests.integration.smart_server import Client
from tests.security.conftest import csrf_of, login, snapshot
from tests.support.cases import basics, prior_auth_case, referral_payload
from tests.support.clock import at, day
from tests.support.console import hidden

# --- undo-complete --------------------------------------------------------------------------------


def _referral(client: FhirClient, uid: str) -> tuple[dict[str, str], str, str]:
    """(people, Task, ServiceRequest) of a referral the coordinator has started."""
    b = basics(client, uid)
    written = run("refer", referral_payload(b, uid), client).written
    task = next(r for r in written if r.startswith("Task/"))
    request = next(r for r in written if r.startswith("ServiceRequest/"))
    for status in ("accepted", "in-progress"):
        run("task", {"task": task, "to": status, "actor": b["coordinator"]}, client)
    return b, task, request


def _second_fulfilment_task(client: FhirClient, b: dict[str, str], request: str) -> str:
    """Another fulfilment Task of the same ServiceRequest (a second program asked to do it), in progress."""
    created = client.create(
        {
            "resourceType": "Task",
            "status": "in-progress",
            "intent": "order",
            "code": {"coding": [{"system": "http://hl7.org/fhir/CodeSystem/task-code", "code": "fulfill"}]},
            "focus": {"reference": request},
            "for": {"reference": b["patient"]},
            "owner": {"reference": b["org"]},
            "authoredOn": at(0, "08:00"),
        }
    )
    return f"Task/{created['id']}"


def test_undoing_one_tasks_completion_leaves_a_request_another_task_closed_completed(
    client: FhirClient, uid: str
) -> None:
    b, first, request = _referral(client, uid)
    second = _second_fulfilment_task(client, b, request)
    # the first program completes through fhircare: the referral's ServiceRequest is closed by it
    run("task", {"task": first, "to": "completed", "actor": b["coordinator"]}, client)
    assert client.read_reference(request)["status"] == "completed"
    # the second program's Task is completed by the EHR (no fhircare run, no Provenance), by mistake
    done = client.read_reference(second)
    client.update({**done, "status": "completed", "lastModified": clock.now().isoformat(timespec="seconds")})
    run("undo-complete", {"task": second, "actor": b["coordinator"]}, client)
    assert client.read_reference(second)["status"] == "in-progress"  # the undo itself went through
    assert client.read_reference(first)["status"] == "completed"  # ...and the first completion stands
    assert client.read_reference(request)["status"] == "completed", (
        "the ServiceRequest the first Task's completion closed was reopened by undoing another Task"
    )


def _incoming(client: FhirClient, b: dict[str, str], uid: str, **extra: Any) -> str:
    """A referral Task another organization created on our server (we are the performer)."""
    created = client.create(
        {
            "resourceType": "Task",
            "status": "requested",
            "intent": "order",
            "identifier": [{"system": URL_SYSTEM, "value": f"https://requester.example.org/fhir/Task/{uid}"}],
            "code": {"coding": [{"system": "http://hl7.org/fhir/CodeSystem/task-code", "code": "fulfill"}]},
            "for": {"reference": b["patient"]},
            "description": f"Food delivery {uid}",
            "authoredOn": at(0, "08:00"),
            **extra,
        }
    )
    task_id = str(created["id"])
    work(client, task_id, "accepted")
    work(client, task_id, "in-progress")
    return task_id


def test_undoing_a_completion_withdraws_the_procedure_it_wrote(client: FhirClient, uid: str) -> None:
    b = basics(client, uid)
    task_id = _incoming(client, b, uid)
    work(client, task_id, "completed", outcome=f"Groceries delivered {uid}")
    completed = client.read("Task", task_id)
    procedure = completed["output"][0]["valueReference"]["reference"]
    assert client.read_reference(procedure)["status"] == "completed"
    run("undo-complete", {"task": f"Task/{task_id}", "actor": b["coordinator"]}, client)
    undone = client.read("Task", task_id)
    assert undone["status"] == "in-progress" and "output" not in undone  # the undo went through
    assert client.read_reference(procedure)["status"] != "completed", (
        "the undone completion's Procedure still says the service was performed"
    )


def test_the_undo_window_is_not_counted_from_a_time_the_writer_chose(client: FhirClient, uid: str) -> None:
    b = basics(client, uid)
    # the requester created the incoming Task with a lastModified of its choosing, days ahead
    task_id = _incoming(client, b, uid, lastModified=at(30, "10:00"))
    work(client, task_id, "completed", outcome=f"Ride given {uid}")
    # one day later by every clock (ours and the server's completion time are both today)
    with clock.frozen(clock.now() + timedelta(days=1)):
        try:
            run("undo-complete", {"task": f"Task/{task_id}", "actor": b["coordinator"]}, client)
        except FhircareError:  # refused: what the window promises
            pass
    assert client.read("Task", task_id)["status"] == "completed", (
        "a completion made a day ago was undone: its window came from the lastModified its writer chose"
    )


def test_the_same_undo_twice_and_an_undo_naming_a_forged_version_write_nothing_more(
    client: FhirClient, uid: str
) -> None:
    """Held: an undo naming a version the Task is not at is refused; after one undo a second (another
    request id) finds nothing to undo; one undo Provenance in all."""
    b, task, request = _referral(client, uid)
    run("task", {"task": task, "to": "completed", "actor": b["coordinator"]}, client)
    version = str(client.read_reference(task)["meta"]["versionId"])
    before = snapshot(client, [task, request])
    forged = {"task": task, "actor": b["coordinator"], "version": f"{version}0"}
    with pytest.raises(FhircareError, match="changed after it was completed"):
        run("undo-complete", forged, client)
    assert snapshot(client, [task, request]) == before
    run("undo-complete", {"task": task, "actor": b["coordinator"], "version": version}, client)
    after = snapshot(client, [task, request])
    with pytest.raises(FhircareError, match="not completed"):
        run(
            "undo-complete", {"task": task, "actor": b["coordinator"], "request_id": uuid.uuid4().hex}, client
        )
    assert snapshot(client, [task, request]) == after
    assert client.read_reference(task)["status"] == "in-progress"


def test_a_patient_session_cannot_undo_another_patients_completion(
    sidecar: Any, auth: Any, client: FhirClient, fhir_server: Any, records: Any
) -> None:
    """Held: the API's undo-complete and the page's Undo, in A's patient session, on B's completed
    referral inside its window: 403/404, nothing written, nothing of B named."""
    a, b = records
    for status in ("accepted", "in-progress", "completed"):
        run("task", {"task": b.task, "to": status, "actor": b.basics["coordinator"]}, client)
    version = str(client.read_reference(b.task)["meta"]["versionId"])
    browser = login(sidecar, auth, patient=a.patient)
    own = a.patient.split("/")[1]
    token = csrf_of(browser, sidecar, f"/patients/{own}")
    watched = [b.task, b.referral]
    versions, counts = snapshot(client, watched), fhir_server.resource_counts()
    api = browser.post(
        f"{sidecar.url}/api/v1/workflows/undo-complete", json={"task": b.task, "version": version}, timeout=60
    )
    assert api.status_code == 403, api.text
    for path in (f"/patients/{own}/tasks/{b.task.split('/')[1]}/undo", f"/tasks/{b.task.split('/')[1]}/undo"):
        page = browser.post(
            f"{sidecar.url}{path}",
            data={"csrf": token, "version": version},
            allow_redirects=False,
            timeout=60,
        )
        assert page.status_code in (403, 404), (path, page.status_code)
        assert "Bravo" not in page.text
    assert snapshot(client, watched) == versions and fhir_server.resource_counts() == counts


# --- the light pattern: who is a partner's caller -------------------------------------------------


def _console(light: Light) -> Sidecar:  # noqa: F811 - the imported fixture's type
    port = free_port()
    light.auth.register(Client("fhircare-test", [f"http://127.0.0.1:{port}/callback"]))
    return Sidecar(smart_settings(light.auth.iss, port, partners_file=str(light.partners_file)), port)


def _another_spelling(base: str) -> str:
    """Our base as another spelling names it: the same server through ``localhost``."""
    return base.replace("127.0.0.1", "localhost")


def test_a_partners_staff_named_under_another_spelling_of_our_base_is_still_the_partners(
    light: Light,  # noqa: F811 - the imported fixture
) -> None:
    patient_id = light.patient.split("/")[1]
    with _console(light) as console:
        user = f"{_another_spelling(light.client.base_url).rstrip('/')}/{light.staff}"
        browser = _login(console, light.auth, user)
        page = browser.get(f"{console.url}/patients/{patient_id}", timeout=30)
        caseload = browser.get(f"{console.url}/api/v1/caseload", timeout=30)
        assert (page.status_code, caseload.status_code) == (403, 403), (
            f"the partner's nurse reads our patients' pages ({page.status_code}) and caseload "
            f"({caseload.status_code})"
        )


@pytest.mark.parametrize("spelling", ["another spelling of our base", "the PractitionerRole"])
def test_a_partners_worker_known_by_role_cannot_refer_under_another_name(
    light: Light,  # noqa: F811 - the imported fixture
    spelling: str,
) -> None:
    if spelling == "the PractitionerRole":
        (role,) = light.client.search("PractitionerRole", {"practitioner": light.role_staff})
        user = f"PractitionerRole/{role['id']}"
    else:
        user = f"{_another_spelling(light.client.base_url).rstrip('/')}/{light.role_staff}"
    counts = light.server.resource_counts()
    with _console(light) as console:
        worker = _login(console, light.auth, user)
        people = {"patient": light.patient, "org": light.org_b, "coordinator": light.coordinator}
        refer = worker.post(
            f"{console.url}/api/v1/workflows/refer",
            json=referral_payload(people, uuid.uuid4().hex[:8]),
            timeout=30,
        )
    assert refer.status_code == 403 and light.server.resource_counts() == counts, refer.status_code


def test_a_partners_caller_reaches_no_undo_and_no_me(light: Light) -> None:  # noqa: F811
    """Held: a partner's backend caller cannot run undo-complete (API, either page address) on a Task its
    Organization owns and completed, and neither the backend sidecar nor the SMART console has a ``/me``."""
    task_id, request_id = light.refer(light.org_a)
    for status in ("accepted", "in-progress", "completed"):
        assert light.transition(task_id, {"to": status}).status_code == 201
    watched = [f"Task/{task_id}", f"ServiceRequest/{request_id}"]
    before = snapshot(light.client, watched)
    api = requests.post(
        f"{light.backend.url}/api/v1/workflows/undo-complete",
        json={"task": f"Task/{task_id}"},
        headers=light.headers("cbo-a-intake"),
        timeout=30,
    )
    assert api.status_code == 403, api.text
    for path in (f"/tasks/{task_id}/undo", f"/patients/{light.patient.split('/')[1]}/tasks/{task_id}/undo"):
        answer = requests.post(
            f"{light.backend.url}{path}", data={}, headers=light.headers("cbo-a-intake"), timeout=30
        )
        assert answer.status_code == 403, (path, answer.status_code)
    assert snapshot(light.client, watched) == before
    clinic_app = light.headers("clinic-scheduler")  # one of ours, in backend mode: no "I am" either
    assert requests.get(f"{light.backend.url}/me", headers=clinic_app, timeout=30).status_code == 404
    with _console(light) as console:
        ours = _login(console, light.auth, light.coordinator)
        assert ours.get(f"{console.url}/me", timeout=30).status_code == 404
        assert ours.post(f"{console.url}/me", data={"me": light.staff}, timeout=30).status_code in (400, 404)


# --- request ids in the console's forms -------------------------------------------------------------


def test_a_consumed_request_id_replayed_into_another_patients_form_is_not_reported_done(
    dev: Sidecar, client: FhirClient, uid: str
) -> None:
    a, b = basics(client, uid), basics(client, uid + "b")
    browser = requests.Session()
    a_id, b_id = a["patient"].split("/")[1], b["patient"].split("/")[1]
    form_a = hidden(browser.get(f"{dev.url}/patients/{a_id}/do/refer", timeout=30).text)
    sent = browser.post(
        f"{dev.url}/patients/{a_id}/do/refer",
        data={**form_a, **referral_payload(a, uid)},
        allow_redirects=False,
        timeout=30,
    )
    assert sent.status_code == 303, sent.text
    form_b = hidden(browser.get(f"{dev.url}/patients/{b_id}/do/refer", timeout=30).text)
    assert form_b["request_id"] != form_a["request_id"]
    replayed = browser.post(
        f"{dev.url}/patients/{b_id}/do/refer",
        data={**form_b, **referral_payload(b, uid + "b"), "request_id": form_a["request_id"]},
        timeout=30,
    )
    b_tasks = list(client.search("Task", {"patient": b["patient"]}))
    said_done = "already done" in replayed.text
    assert b_tasks or not said_done, "B's referral was reported done (already done) and nothing was written"


@pytest.mark.parametrize("kind", ["Patient", "Practitioner", "Organization?_id=x&_id=y", "an organization"])
def test_another_organization_naming_a_patient_or_a_person_as_payer_is_refused(
    dev: Sidecar, client: FhirClient, fhir_server: Any, uid: str, kind: str
) -> None:
    """Held: the payer picker's way out ('Not listed? Another organization', ``payor:other``) posted with
    a Patient, a Practitioner or a forged query instead of an Organization: 422 at the payer, nothing
    written."""
    b = basics(client, uid)
    pid = b["patient"].split("/")[1]
    other = {"Patient": b["patient"], "Practitioner": b["coordinator"], "an organization": b["org"]}.get(
        kind, kind
    )
    browser = requests.Session()
    form = hidden(browser.get(f"{dev.url}/patients/{pid}/do/coverage-check", timeout=30).text)
    counts = fhir_server.resource_counts()
    answer = browser.post(
        f"{dev.url}/patients/{pid}/do/coverage-check",
        data={
            **form,
            "payor": b["payer"],
            "payor:other": other,
            "subscriber_id": f"SUB-{uid}",
            "service": "diabetes-education",
            "date": day(3),
            "relationship": "self",
        },
        allow_redirects=False,
        timeout=30,
    )
    if kind == "an organization":  # the way out itself works: the control
        assert answer.status_code == 303, answer.text
        (coverage,) = client.search("Coverage", {"patient": b["patient"]})
        assert [p["reference"] for p in coverage["payor"]] == [b["org"]]
        return
    assert answer.status_code == 422, answer.status_code
    assert "payor" in answer.text and fhir_server.resource_counts() == counts


# --- the incoming worklist: a Task anyone created, posing as a partner's referral ------------------------


#: a requester "under the partner's base" that is a search both partner servers refuse (400)
POISON = "Organization?_lastUpdated=notadate&_count=abc"


def _posing(world: World, for_url: str, requester_url: str, description: str) -> None:  # noqa: F811
    """A Task anyone with Task create on our server writes: an identifier in urn:ietf:rfc:3986 (any value)
    makes it an incoming referral."""
    world.ours.create(
        {
            "resourceType": "Task",
            "status": "requested",
            "intent": "order",
            "identifier": [{"system": URL_SYSTEM, "value": "urn:anything"}],
            "for": {"reference": for_url},
            "requester": {"reference": requester_url},
            "description": description,
        }
    )


def test_a_posing_incoming_task_never_sends_the_partners_credentials_past_the_partners_base(
    world: World,  # noqa: F811 - the imported fixture
) -> None:
    """Held: a Task created on our server by anyone, with an identifier in urn:ietf:rfc:3986 (any value:
    it passes as incoming) and a ``for`` that starts with the partner's base but goes on to a third
    server (an absolute URL after the base): the names are asked of the partner's base only, and the
    third server is never reached with the partner's credentials."""
    base = world.proxy.base_url.rstrip("/")
    with FaultProxy(world.theirs.base_url) as third:
        elsewhere = third.base_url.rstrip("/")
        _posing(world, f"{base}/{elsewhere}/Patient/p1", f"{elsewhere}/Organization/o1", "posing")
        world.proxy.log.seen.clear()
        try:
            incoming(world.exchange)
        except FhircareError:  # the partner refuses the entry: the next test's defect
            pass
        assert third.log.seen == []
    partner_path = world.proxy.upstream_path or "/"
    assert all(path.split("?")[0].rstrip("/") in ("", partner_path) for _, path, _ in world.proxy.log.seen)


def test_one_posing_incoming_task_does_not_break_the_incoming_listing(
    world: World,  # noqa: F811 - the imported fixture
) -> None:
    base = world.proxy.base_url.rstrip("/")
    world.ours.create(
        {
            "resourceType": "Task",
            "status": "requested",
            "intent": "order",
            "identifier": [{"system": URL_SYSTEM, "value": f"{base}/Task/real-{uuid.uuid4().hex[:6]}"}],
            "description": "a real referral",
        }
    )
    _posing(world, f"{base}/Patient/p1", f"{base}/{POISON}", "posing")
    rows = incoming(world.exchange)
    assert "a real referral" in {r.get("description") for r in rows}


def test_the_team_tab_survives_a_posing_incoming_task(
    world: World,  # noqa: F811 - the imported fixture
) -> None:
    """Held: the console's Team tab lists a real incoming referral beside a posing one whose requester the
    partner refuses to read."""
    base = world.proxy.base_url.rstrip("/")
    world.ours.create(
        {
            "resourceType": "Task",
            "status": "requested",
            "intent": "order",
            "identifier": [{"system": URL_SYSTEM, "value": f"{base}/Task/real-{uuid.uuid4().hex[:6]}"}],
            "description": "a real referral",
        }
    )
    _posing(world, f"{base}/Patient/p1", f"{base}/{POISON}", "posing")
    settings = Settings(base_url=world.ours.base_url, partners_file=world.partners_file, retries=1)
    with Sidecar(settings) as console:
        page = requests.get(f"{console.url}/", params={"tab": "team"}, timeout=60)
    assert page.status_code == 200 and "a real referral" in page.text, page.status_code


# --- the sent-to identifier -------------------------------------------------------------------------


def test_our_coordinators_edits_of_a_sent_task_keep_its_sent_to_identifier(
    world: World,  # noqa: F811 - the imported fixture
) -> None:
    """Held: a note by our coordinator (the task workflow, API face) and a refused status change leave
    the identifier ``exchange status`` finds a sent Task by; exchange status still lists it."""
    task_id, _ = world.refer()
    send(world.exchange, task_id)
    sent = f"Task/{task_id}"
    assert names_partner(world.ours.read("Task", task_id), world.exchange.namespace_base, world.partner)
    run("task", {"task": sent, "note": "called the program", "actor": world.coordinator}, world.ours)
    with pytest.raises(FhircareError):
        run("task", {"task": sent, "to": "completed", "actor": world.coordinator}, world.ours)
    assert names_partner(world.ours.read("Task", task_id), world.exchange.namespace_base, world.partner)
    assert sent in {row["task"] for row in referrals(world.exchange)}


def test_undoing_a_recorded_decision_does_not_leave_it_standing(client: FhirClient, uid: str) -> None:
    case = prior_auth_case(client, uid)
    written = run("prior-auth", case.payload, client).written
    task = next(r for r in written if r.startswith("Task/"))
    manual = {
        "decision": "approved",
        "number": f"PA-{uid}",
        "period": {"start": day(1), "end": day(90)},
        "said_by": "Dana at the payer",
        "channel": "phone",
    }
    actor = case.payload["provider"]
    run("prior-auth", {"action": "record-decision", "task": task, "manual": manual, "actor": actor}, client)
    assert client.read_reference(task)["status"] == "completed"
    run("undo-complete", {"task": task, "actor": actor}, client)
    assert client.read_reference(task)["status"] != "completed"  # the undo went through
    rows = [r for r in drain(authorizations(client, patient=case.payload["patient"])) if r.task == task]
    assert rows and rows[0].decision == "awaiting", (
        f"the undone decision still stands: {rows[0].decision} {rows[0].auth_number}" if rows else "no row"
    )
