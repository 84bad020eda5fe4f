"""The light pattern's guard (issue 21, Deliver 7 and 9): a partner without a FHIR server works its
referral Task on OUR server through the sidecar. A caller who belongs to a partner (a backend caller
token's subject or a SMART user's fhirUser listed under the partner's ``callers``, or a Practitioner with
a PractitionerRole at its Organization under ``callers_by_role``) always acts for that partner, changes
only status, statusReason and output of Tasks its Organization owns, and reaches nothing else. Real
sidecars over HTTP on both servers; the server is read back after every refusal."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families

from fhircare.fhir import FhirClient
from fhircare.server.launcher import free_port
from fhircare.workflows import run
from tests.integration.sidecar_harness import Sidecar, smart_settings
from tests.integration.smart_server import Client
from tests.security.conftest import AttackedAuthServer, csrf_of
from tests.support.backend import backend_settings, caller_token
from tests.support.cases import referral_payload
from tests.support.clock import at, day

PARTNER_APP = "cbo-a-intake"  # the subject of partner A's backend caller token
OTHER_APP = "cbo-b-intake"
CLINIC_APP = "clinic-scheduler"  # one of ours: not listed anywhere


@dataclass
class Light:
    """Our server with two partners' Organizations, their staff, and sidecars in front of it."""

    client: FhirClient
    server: Any
    auth: AttackedAuthServer
    backend: Sidecar
    caller_key: str
    clinic: str
    org_a: str
    org_b: str
    patient: str
    coordinator: str
    staff: str  # partner A's nurse, listed under callers
    role_staff: str  # partner A's worker, known by a PractitionerRole only
    partners_file: Path

    def headers(self, subject: str, scope: str = "system/*.cruds") -> dict[str, str]:
        return {"Authorization": f"Bearer {caller_token(self.caller_key, scope, subject)}"}

    def refer(self, org: str) -> tuple[str, str]:
        """A referral owned by ``org``: (Task id, ServiceRequest id)."""
        people = {"patient": self.patient, "org": org, "coordinator": self.coordinator}
        payload = referral_payload(people, uuid.uuid4().hex[:8], due=day(14))
        written = run("refer", payload, self.client).written
        task = next(r for r in written if r.startswith("Task/"))
        request = next(r for r in written if r.startswith("ServiceRequest/"))
        return task.split("/")[1], request.split("/")[1]

    def transition(self, task_id: str, body: dict[str, Any], subject: str = PARTNER_APP) -> Any:
        url = f"{self.backend.url}/api/v1/tasks/{task_id}/transition"
        return requests.post(url, json=body, headers=self.headers(subject), timeout=30)


def _make(client: FhirClient, resource: dict[str, Any]) -> str:
    created = client.create(resource)
    return f"{created['resourceType']}/{created['id']}"


@pytest.fixture(scope="module")
def light(fhir_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Light]:
    folder = tmp_path_factory.mktemp("light")
    uid = uuid.uuid4().hex[:8]
    auth = AttackedAuthServer(fhir_server.base_url)
    auth.start()
    with FhirClient(fhir_server.base_url, retries=2, backoff_factor=0.05) as client:
        clinic = _make(client, {"resourceType": "Organization", "name": f"Clinic {uid}"})
        org_a = _make(client, {"resourceType": "Organization", "name": f"Food bank {uid}"})
        org_b = _make(client, {"resourceType": "Organization", "name": f"Ride co {uid}"})
        patient = _make(client, {"resourceType": "Patient", "name": [{"family": f"Light{uid}"}]})
        coordinator = _make(client, {"resourceType": "Practitioner", "name": [{"family": f"Coord{uid}"}]})
        staff = _make(client, {"resourceType": "Practitioner", "name": [{"family": f"Nurse{uid}"}]})
        role_staff = _make(client, {"resourceType": "Practitioner", "name": [{"family": f"Worker{uid}"}]})
        _make(
            client,
            {
                "resourceType": "PractitionerRole",
                "active": True,
                "practitioner": {"reference": role_staff},
                "organization": {"reference": org_a},
            },
        )
        document = {
            "self": {"base": fhir_server.base_url, "organization": clinic},
            "partners": {
                "cbo-a": {
                    "organization": org_a,
                    "pattern": "light",
                    "callers": [PARTNER_APP, staff],
                    "callers_by_role": True,
                },
                "cbo-b": {"organization": org_b, "pattern": "light", "callers": [OTHER_APP]},
            },
        }
        path = folder / "partners.yaml"
        path.write_text(yaml.safe_dump(document), encoding="utf-8")
        settings, caller_private = backend_settings(
            auth, folder, partners_file=str(path), metrics=True, retries=1, backoff_factor=0.01
        )
        try:
            with Sidecar(settings) as backend:
                yield Light(
                    client,
                    fhir_server,
                    auth,
                    backend,
                    caller_private,
                    clinic,
                    org_a,
                    org_b,
                    patient,
                    coordinator,
                    staff,
                    role_staff,
                    path,
                )
        finally:
            auth.stop()


def _login(console: Sidecar, auth: AttackedAuthServer, user: str) -> requests.Session:
    """A browser signed in as ``user`` (its fhirUser) through the EHR launch; the console may then send
    a partner's staff on to their worklist."""
    auth.user, auth.grant_patient, auth.grant_scope = user, None, None
    browser = requests.Session()
    params = {"iss": auth.iss, "launch": "ehr-launch"}
    answer = browser.get(f"{console.url}/launch", params=params, allow_redirects=True, timeout=30)
    assert any(r.headers.get("Location") == "/" for r in answer.history), answer.text
    return browser


def _issues(answer: Any) -> list[str]:
    return [e for issue in answer.json()["issue"] for e in issue.get("expression") or []]


def test_a_partner_caller_without_on_behalf_of_changes_only_status_reason_and_output(light: Light) -> None:
    task_id, request_id = light.refer(light.org_a)
    before = light.client.read("Task", task_id)
    counts = light.server.resource_counts()
    refused = {
        "note": ({"note": "we changed the plan"}, 422, "$.note"),
        "owner": ({"owner": light.coordinator}, 422, "$.owner"),
        "business status": ({"business_status": "waiting"}, 422, "$.businessStatus"),
        "cancel": ({"to": "cancelled", "reason": "x"}, 422, "$.to"),
        "description": ({"to": "accepted", "description": "other"}, 422, None),
        "for": ({"to": "accepted", "for": light.coordinator}, 422, None),
        "priority": ({"to": "accepted", "priority": "stat"}, 422, None),
        "another org": ({"to": "accepted", "on_behalf_of": light.clinic}, 403, None),
        "another actor": ({"to": "accepted", "actor": light.coordinator}, 403, None),
    }
    for case, (body, status, path) in refused.items():
        answer = light.transition(task_id, body)
        assert answer.status_code == status, (case, answer.text)
        assert answer.json()["resourceType"] == "OperationOutcome", case
        if path is not None:
            assert path in _issues(answer), (case, answer.text)
    assert light.client.read("Task", task_id) == before  # exactly what it held: same version, same fields
    assert light.server.resource_counts() == counts
    for body in (
        {"to": "accepted", "actor": light.staff},  # one of the partner's listed people may be named
        {"to": "in-progress"},
    ):
        answer = light.transition(task_id, body)
        assert answer.status_code == 201, (body, answer.text)
    # a completion's outcome text is echoed as a note by the workflow; a note of its own is still refused
    working = light.client.read("Task", task_id)
    sneaky = light.transition(
        task_id, {"to": "completed", "outcome": {"note": "done"}, "note": "plan changed"}
    )
    assert sneaky.status_code == 422 and "$.note" in _issues(sneaky), sneaky.text
    assert light.client.read("Task", task_id) == working
    answer = light.transition(task_id, {"to": "completed", "outcome": {"code": "x1"}})
    assert answer.status_code == 201, answer.text
    after = light.client.read("Task", task_id)
    assert after["status"] == "completed" and after["output"]
    for name in ("description", "for", "priority", "focus", "requester", "owner", "note", "restriction"):
        assert after.get(name) == before.get(name), name
    assert light.client.read("ServiceRequest", request_id)["status"] == "completed"
    provenance = light.client.search("Provenance", {"target": f"Task/{task_id}"})
    behalf = {
        (agent.get("onBehalfOf") or {}).get("reference") for p in provenance for agent in p.get("agent") or []
    }
    assert light.org_a in behalf  # treated as the partner's although the payload named no one


def test_a_partner_caller_reaches_nothing_but_its_own_tasks(light: Light) -> None:
    theirs, _ = light.refer(light.org_b)
    open_one, _ = light.refer(light.org_a)
    ours = light.client.read("Task", light.refer(light.org_a)[0])
    ours = light.client.update({**ours, "owner": {"reference": light.coordinator}})
    held = {tid: light.client.read("Task", tid) for tid in (theirs, ours["id"])}
    counts = light.server.resource_counts()
    for task_id in (theirs, ours["id"], "no-such-task"):
        answer = light.transition(task_id, {"to": "accepted"})
        assert answer.status_code == 403, answer.text
    headers = light.headers(PARTNER_APP)
    url = light.backend.url
    people = {"patient": light.patient, "org": light.org_a, "coordinator": light.coordinator}
    writes = [
        ("/api/v1/workflows/refer", referral_payload(people, "x", due=day(14))),
        ("/api/v1/workflows/enroll", {"patient": light.patient}),
        ("/api/v1/workflows/task", {"task": f"Task/{theirs}", "to": "accepted"}),
        ("/api/v1/exchange/send", {"task": f"Task/{theirs}"}),
        ("/api/v1/exchange/cancel", {"task": f"Task/{theirs}", "reason": "x"}),
        ("/api/v1/exchange/resolve", {"task": f"Task/{theirs}", "take": "local"}),
    ]
    for path, body in writes:
        answer = requests.post(f"{url}{path}", json=body, headers=headers, timeout=30)
        assert answer.status_code == 403, (path, answer.text)
    reads = [
        f"/api/v1/patients/{light.patient.split('/')[1]}/summary",
        "/api/v1/gaps",
        "/api/v1/caseload",
        "/api/v1/authorizations",
        "/api/v1/exchange/status",
        f"/api/v1/worklist?owner={light.org_b}",
        f"/api/v1/worklist?patient={light.patient}",
    ]
    for path in reads:
        assert requests.get(f"{url}{path}", headers=headers, timeout=30).status_code == 403, path
    for task_id, task in held.items():
        assert light.client.read("Task", task_id) == task
    assert light.server.resource_counts() == counts
    rows = requests.get(f"{url}/api/v1/worklist", headers=headers, timeout=30)
    assert rows.status_code == 200, rows.text
    owners = {row["owner"] for row in rows.json()}
    assert owners == {light.org_a}  # its Organization's Tasks only, whatever it asked
    assert f"Task/{open_one}" in {row["task"] for row in rows.json()}


def test_the_requesters_own_callers_are_unaffected(light: Light) -> None:
    task_id, _ = light.refer(light.org_a)
    noted = light.transition(task_id, {"note": "call first"}, subject=CLINIC_APP)
    assert noted.status_code == 201, noted.text
    assert light.client.read("Task", task_id)["note"][-1]["text"] == "call first"
    theirs, _ = light.refer(light.org_b)  # the other partner's caller cannot touch A's
    assert light.transition(task_id, {"to": "accepted"}, subject=OTHER_APP).status_code == 403
    assert light.transition(theirs, {"to": "accepted"}, subject=OTHER_APP).status_code == 201
    people = {"patient": light.patient, "org": light.org_a, "coordinator": light.coordinator}
    referred = requests.post(
        f"{light.backend.url}/api/v1/workflows/refer",
        json=referral_payload(people, "y", due=day(14)),
        headers=light.headers(CLINIC_APP),
        timeout=30,
    )
    assert referred.status_code == 201, referred.text
    # the partner's caller replaying our coordinator's request id on its own Task learns nothing of it
    mine, _ = light.refer(light.org_a)
    replay = light.transition(mine, {"to": "accepted", "request_id": noted.json()["request_id"]})
    assert replay.status_code == 403, replay.text
    assert light.client.read("Task", mine)["status"] == "requested"


def test_partner_callers_are_counted_under_the_partners_name_only(light: Light) -> None:
    task_id, _ = light.refer(light.org_b)
    light.transition(task_id, {"to": "accepted"})
    text = requests.get(f"{light.backend.url}/metrics", timeout=30).text
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    refused = (("endpoint", "api.transition_task"), ("partner", "cbo-a"), ("status", "403"))
    assert samples[("fhircare_partner_caller_requests_total", refused)] >= 1
    partners = {
        dict(labels)["partner"]
        for name, labels in samples
        if name == "fhircare_partner_caller_requests_total"
    }
    assert partners <= {"cbo-a", "cbo-b"}
    for secret in (task_id, PARTNER_APP, light.staff, light.patient, light.org_a):
        assert secret not in text


def test_smart_staff_of_a_partner_work_their_tasks_in_the_console_and_nothing_else(light: Light) -> None:
    mine, _ = light.refer(light.org_a)
    theirs, _ = light.refer(light.org_b)
    patient_id = light.patient.split("/")[1]
    port = free_port()
    light.auth.register(Client("fhircare-test", [f"http://127.0.0.1:{port}/callback"]))
    settings = smart_settings(light.auth.iss, port, partners_file=str(light.partners_file))
    with Sidecar(settings, port) as console:
        browser = _login(console, light.auth, light.staff)
        home = browser.get(f"{console.url}/", allow_redirects=False, timeout=30)
        assert home.status_code == 302 and "tab=mine" in home.headers["Location"]
        assert browser.get(f"{console.url}{home.headers['Location']}", timeout=30).status_code == 200
        page = f"/patients/{patient_id}/tasks/{mine}"
        assert browser.get(f"{console.url}{page}", timeout=30).status_code == 200
        for path in (
            f"/patients/{patient_id}/tasks/{theirs}",
            f"/patients/{patient_id}",
            "/gaps",
            "/patients",
        ):
            assert browser.get(f"{console.url}{path}", timeout=30).status_code == 403, path
        csrf = csrf_of(browser, console, page)
        held = light.client.read("Task", theirs)
        refused = browser.post(
            f"{console.url}/patients/{patient_id}/tasks/{theirs}/status",
            data={"csrf": csrf, "to": "accepted", "request_id": uuid.uuid4().hex},
            allow_redirects=False,
            timeout=30,
        )
        assert refused.status_code == 403 and light.client.read("Task", theirs) == held
        taken = browser.post(
            f"{console.url}{page}/status",
            data={"csrf": csrf, "to": "accepted", "request_id": uuid.uuid4().hex},
            allow_redirects=False,
            timeout=30,
        )
        assert taken.status_code == 303, taken.text
        assert light.client.read("Task", mine)["status"] == "accepted"
        # the worklist's quick actions: the same checks as the API's transition route
        action = f"{console.url}/tasks/{{}}/action"
        started = browser.post(
            action.format(mine), data={"csrf": csrf, "action": "start"}, allow_redirects=False, timeout=30
        )
        assert started.status_code == 303 and light.client.read("Task", mine)["status"] == "in-progress"
        # another's Task: 403; a reassign of its own: refused by the owner's guard (the page says so)
        for task_id, form, status in (
            (theirs, {"action": "accept"}, 403),
            (mine, {"action": "reassign", "new_owner": light.staff}, 303),
        ):
            answer = browser.post(
                action.format(task_id), data={"csrf": csrf, **form}, allow_redirects=False, timeout=30
            )
            assert answer.status_code == status, answer.text
        assert light.client.read("Task", theirs) == held
        assert light.client.read("Task", mine)["owner"] == {"reference": light.org_a}
        done = browser.post(
            f"{console.url}{page}/status",
            data={
                "csrf": csrf,
                "to": "completed",
                "outcome": "Groceries delivered",
                "request_id": uuid.uuid4().hex,
            },
            allow_redirects=False,
            timeout=30,
        )
        assert done.status_code == 303, done.text  # the outcome's text: the output (and its echo as a note)
        completed = light.client.read("Task", mine)
        assert completed["status"] == "completed"
        assert [o.get("valueCodeableConcept", {}).get("text") for o in completed["output"]] == [
            "Groceries delivered"
        ]
        # known by its PractitionerRole at the partner's Organization (callers_by_role), not listed
        worker = _login(console, light.auth, light.role_staff)
        other, _ = light.refer(light.org_a)
        before = light.client.read("Task", other)
        api = f"{console.url}/api/v1/tasks/{other}/transition"
        assert worker.post(api, json={"priority": "stat"}, timeout=30).status_code == 422
        assert worker.post(api, json={"note": "x"}, timeout=30).status_code == 422
        assert (
            worker.post(
                f"{console.url}/api/v1/tasks/{theirs}/transition", json={"to": "accepted"}, timeout=30
            ).status_code
            == 403
        )
        assert light.client.read("Task", other) == before
        people = {"patient": light.patient, "org": light.org_a, "coordinator": light.coordinator}
        refer = worker.post(
            f"{console.url}/api/v1/workflows/refer",
            json=referral_payload(people, "z", due=day(14)),
            timeout=30,
        )
        assert refer.status_code == 403
        assert (
            worker.post(api, json={"to": "rejected", "reason": "at capacity"}, timeout=30).status_code == 201
        )
        assert light.client.read("Task", other)["statusReason"]["text"] == "at capacity"
        ours = _login(console, light.auth, light.coordinator)  # one of ours: the console is all theirs
        assert ours.get(f"{console.url}/patients/{patient_id}", timeout=30).status_code == 200
        assert (
            ours.post(
                f"{console.url}/api/v1/tasks/{theirs}/transition", json={"note": "ok"}, timeout=30
            ).status_code
            == 201
        )


def test_every_route_but_the_partners_own_is_refused_to_a_partners_caller(light: Light) -> None:
    """Deny by default: each route of both faces (a route added later too) that is not public and not
    in PARTNER_ROUTES answers a partner's caller 403 before its view runs; nothing is written."""
    from fhircare.web.policy import PARTNER_ROUTES, POLICY

    app = light.backend.app
    counts = light.server.resource_counts()
    checked = []
    for rule in app.url_map.iter_rules():
        policy = POLICY.get(rule.endpoint)
        if rule.endpoint in PARTNER_ROUTES or policy is None or policy.patient == "public":
            continue
        path = rule.rule
        for name in rule.arguments:
            path = path.replace(f"<{name}>", "x").replace(f"<path:{name}>", "x")
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            answer = requests.request(
                method, f"{light.backend.url}{path}", json={}, headers=light.headers(PARTNER_APP), timeout=30
            )
            assert answer.status_code == 403, (method, path, answer.status_code)
            checked.append(rule.endpoint)
    assert {"api.run_workflow", "api.get_summary", "exchange_api.send", "pages.summary_page"} <= set(checked)
    assert light.server.resource_counts() == counts


def _procedure(light: Light, patient: str, kind: str = "Procedure") -> str:
    subject = {"subject": {"reference": patient}}
    if kind == "Procedure":
        return _make(
            light.client, {"resourceType": kind, "status": "completed", "code": {"text": "x"}, **subject}
        )
    return _make(
        light.client, {"resourceType": kind, "status": "finished", "class": {"code": "AMB"}, **subject}
    )


def test_a_partner_callers_output_names_only_its_referrals_patients_outcome(
    light: Light, server_requests: Any
) -> None:
    """An output the partner sets may name only an outcome (Procedure, Observation, ...) whose subject is
    the Task's patient: another patient's, another type, or nothing at all is one 422 naming
    ``$.output[0].valueReference``, nothing written; the check costs at most one batch read."""
    other = _make(light.client, {"resourceType": "Patient", "name": [{"family": "Elsewhere"}]})
    task_id, request_id = light.refer(light.org_a)
    for status in ("accepted", "in-progress"):
        assert light.transition(task_id, {"to": status}).status_code == 201
    working = light.client.read("Task", task_id)
    refused = {
        "another patient's": _procedure(light, other),
        "not an outcome type": _procedure(light, light.patient, "Encounter"),
        "nothing there": "Procedure/no-such-procedure",
    }
    counts = light.server.resource_counts()
    texts = set()
    for case, reference in refused.items():
        answer = light.transition(task_id, {"to": "completed", "outcome": {"reference": reference}})
        assert answer.status_code == 422, (case, answer.text)
        assert _issues(answer) == ["$.output[0].valueReference"], (case, answer.text)
        texts.add(tuple(issue.get("diagnostics") for issue in answer.json()["issue"]))
        assert light.client.read("Task", task_id) == working, case
    assert len(texts) == 1  # no answer tells another patient's from none at all
    assert light.server.resource_counts() == counts
    assert light.client.read("ServiceRequest", request_id)["status"] == "active"
    # the same completion with an outcome code, then with the patient's own Procedure: one batch more
    coded, _ = light.refer(light.org_a)
    for status in ("accepted", "in-progress"):
        assert light.transition(coded, {"to": status}).status_code == 201
    start = server_requests()
    assert light.transition(coded, {"to": "completed", "outcome": {"code": "x1"}}).status_code == 201
    by_code = server_requests() - start
    own = _procedure(light, light.patient)
    start = server_requests()
    answer = light.transition(task_id, {"to": "completed", "outcome": {"reference": own}})
    by_reference = server_requests() - start
    assert answer.status_code == 201, answer.text
    outputs = [
        o.get("valueReference", {}).get("reference") for o in light.client.read("Task", task_id)["output"]
    ]
    assert outputs == [own]
    assert by_code <= by_reference <= by_code + 1, (by_code, by_reference)


def test_a_backend_partner_caller_naming_no_one_leaves_the_partners_organization_in_provenance(
    light: Light,
) -> None:
    task_id, _ = light.refer(light.org_a)
    answer = light.transition(task_id, {"to": "accepted"})  # no actor: the partner's app, no person
    assert answer.status_code == 201, answer.text
    written = answer.json()["written"]
    provenance_id = next(r for r in written if r.startswith("Provenance/")).split("/")[1]
    agents = light.client.read("Provenance", provenance_id)["agent"]
    assert [a.get("onBehalfOf") for a in agents] == [{"reference": light.org_a}]
    assert agents[0]["who"] == {"display": "fhircare"}


def _worker(light: Light, name: str, *roles: dict[str, Any]) -> str:
    """A Practitioner with ``roles`` (PractitionerRole fields beyond the practitioner)."""
    worker = _make(light.client, {"resourceType": "Practitioner", "name": [{"family": name}]})
    for role in roles:
        _make(
            light.client, {"resourceType": "PractitionerRole", "practitioner": {"reference": worker}, **role}
        )
    return worker


def _console(light: Light) -> Sidecar:
    port = free_port()
    light.auth.register(Client("fhircare-test", [f"http://127.0.0.1:{port}/callback"]))
    return Sidecar(smart_settings(light.auth.iss, port, partners_file=str(light.partners_file)), port)


def _whole_console(light: Light, console: Sidecar, user: str | None) -> tuple[int, int, int]:
    """What ``user`` gets from a patient's page, the caseload and a referral (status codes)."""
    browser = _login(console, light.auth, user) if user is not None else _login_without_user(console, light)
    page = browser.get(f"{console.url}/patients/{light.patient.split('/')[1]}", timeout=30)
    caseload = browser.get(f"{console.url}/api/v1/caseload", timeout=30)
    people = {"patient": light.patient, "org": light.org_b, "coordinator": light.coordinator}
    refer = browser.post(
        f"{console.url}/api/v1/workflows/refer",
        json=referral_payload(people, uuid.uuid4().hex[:8]),
        timeout=30,
    )
    return page.status_code, caseload.status_code, refer.status_code


def _login_without_user(console: Sidecar, light: Light) -> requests.Session:
    light.auth.user, light.auth.grant_patient, light.auth.grant_scope = None, None, None
    browser = requests.Session()
    params = {"iss": light.auth.iss, "launch": "ehr-launch"}
    browser.get(f"{console.url}/launch", params=params, allow_redirects=True, timeout=30)
    return browser


@pytest.mark.parametrize(
    "ended", ["active false", "period ended yesterday", "period ended at noon yesterday"]
)
def test_a_partners_worker_whose_role_ended_gets_nothing_not_the_whole_console(
    light: Light, ended: str
) -> None:
    """Fail closed: a worker whose only role at a callers_by_role partner has ended is no longer the
    partner's, and not one of our coordinators either (403 everywhere, nothing written), whether the
    fhirUser is the Practitioner or that ended PractitionerRole; with an active role at our Organization
    too, they are ours again."""
    end = {
        "active false": {"active": False},
        "period ended yesterday": {"active": True, "period": {"start": day(-30), "end": day(-1)}},
        "period ended at noon yesterday": {"period": {"end": at(-1, "12:00")}},
    }[ended]
    gone = _worker(light, "Gone", {"organization": {"reference": light.org_a}, **end})
    (role,) = light.client.search("PractitionerRole", {"practitioner": gone})
    moved = _worker(
        light,
        "Moved",
        {"organization": {"reference": light.org_a}, **end},
        {"organization": {"reference": light.clinic}, "active": True},
    )
    counts = light.server.resource_counts()
    with _console(light) as console:
        for user in (gone, f"PractitionerRole/{role['id']}"):
            assert _whole_console(light, console, user) == (403, 403, 403), user
        assert light.server.resource_counts() == counts
        page, caseload, _ = _whole_console(light, console, moved)
        assert (page, caseload) == (200, 200)


def test_a_signed_in_user_the_sidecar_cannot_place_gets_nothing_while_partners_use_it(light: Light) -> None:
    """With partners' staff at the sidecar, a token naming no user, a user of another kind or one under a
    server we do not know is refused everything (never taken for one of our coordinators); our base under
    another scheme, host case, default port or trailing slash is still ours."""
    counts = light.server.resource_counts()
    base = light.client.base_url.rstrip("/")
    with _console(light) as console:
        for user in (None, light.patient, f"https://elsewhere.example/fhir/{light.coordinator}"):
            assert _whole_console(light, console, user) == (403, 403, 403), user
        assert light.server.resource_counts() == counts
        same = base.replace("http://", "HTTPS://") + "/"  # the port is explicit: the scheme is not compared
        assert _whole_console(light, console, f"{same}/{light.coordinator}")[:2] == (200, 200)


@pytest.mark.parametrize(
    ("user", "expected"),
    [
        ("https://EHR.example.org:443/fhir/Practitioner/a", "Practitioner/a"),
        ("http://ehr.example.org/fhir//Practitioner/a", "Practitioner/a"),
        ("http://ehr.example.org:80/fhir/PractitionerRole/r", "PractitionerRole/r"),
        (
            "https://ehr.example.org:8443/fhir/Practitioner/a",
            "https://ehr.example.org:8443/fhir/Practitioner/a",
        ),
        ("https://ehr.example.org/other/Practitioner/a", "https://ehr.example.org/other/Practitioner/a"),
        ("https://x@ehr.example.org/fhir/Practitioner/a", "https://x@ehr.example.org/fhir/Practitioner/a"),
        (
            "https://ehr.example.org.evil/fhir/Practitioner/a",
            "https://ehr.example.org.evil/fhir/Practitioner/a",
        ),
        ("Practitioner/a", "Practitioner/a"),
    ],
)
def test_a_fhir_user_is_ours_only_under_our_base_however_spelled(user: str, expected: str) -> None:
    from fhircare.web.callers import own_reference

    assert own_reference(user, ("https://ehr.example.org/fhir/",)) == expected
