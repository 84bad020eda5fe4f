"""Adversary review of the exchange: a hostile partner's sync input and the sidecar's exchange routes.

Every reference a partner's payload carries is a way into another patient's record until a test proves
otherwise. Two real FHIR servers as two organizations (tests/exchange/conftest.py: ours embedded, the
partner embedded or Medplum's router, behind the fault proxy); the sidecar over real HTTP.

Tests marked ``xfail(strict=True)`` prove a defect found today: when it is fixed the marker must come
off. The plain tests are attacks that held, kept as regressions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from fhircare.exchange import referrals, send, sync_once, work
from fhircare.exchange.links import URL_SYSTEM
from fhircare.exchange.send import source_tag
from fhircare.server.launcher import free_port
from fhircare.settings import Settings
from tests.exchange.conftest import (  # noqa: F401 - the two-organization fixtures, used here too
    World,
    our_server,
    partner_server,
    proxy,
    world,
)
from tests.exchange.test_light_guard import light  # noqa: F401 - the light-pattern sidecar
from tests.faults.proxy import FaultProxy
from tests.integration.sidecar_harness import Sidecar, smart_settings
from tests.integration.smart_server import Client
from tests.security.conftest import AttackedAuthServer, login
from tests.support.clock import at

API = "/api/v1/exchange"
HOOK_SECRET = "adversary-hook-secret"


def _sync(w: World) -> dict[str, Any]:
    return sync_once(w.exchange, w.partner)["partners"][w.partner]


def _other_patient(w: World, family: str = "Victim") -> str:
    created = w.ours.create({"resourceType": "Patient", "name": [{"family": family, "given": ["Bea"]}]})
    return f"Patient/{created['id']}"


def _ours_absolute(w: World, reference: str) -> str:
    return f"{w.exchange.partners.base}/{reference}"


def _outputs(task: dict[str, Any]) -> list[str]:
    return [str((o.get("valueReference") or {}).get("reference")) for o in task.get("output") or []]


def _sent(w: World) -> tuple[str, str, dict[str, Any]]:
    """A referral of the World's patient, sent: (our Task id, our ServiceRequest id, the partner's Task)."""
    task_id, request_id = w.refer()
    send(w.exchange, task_id)
    return task_id, request_id, w.remote_of(task_id)


def _resulting(reference: str) -> dict[str, Any]:
    return {"type": {"text": "resulting-activity"}, "valueReference": {"reference": reference}}


# --- sync input from a hostile partner ------------------------------------------------------------


def test_a_remote_output_naming_another_patients_resource_on_our_server_is_not_linked(w: World) -> None:
    victim = _other_patient(w)
    theirs = w.ours.create(
        {
            "resourceType": "Procedure",
            "status": "completed",
            "code": {"text": "B's confidential procedure"},
            "subject": {"reference": victim},
        }
    )
    task_id, request_id, remote = _sent(w)
    remote["status"] = "completed"
    remote["output"] = [_resulting(_ours_absolute(w, f"Procedure/{theirs['id']}"))]
    w.theirs.update(remote)
    _sync(w)
    ours = w.ours.read("Task", task_id)
    assert f"Procedure/{theirs['id']}" not in _outputs(ours), "our Task now points at B's Procedure"


def test_a_copied_procedure_naming_another_patient_is_not_written_into_that_patients_record(
    w: World,
) -> None:
    victim = _other_patient(w)
    task_id, _, remote = _sent(w)
    planted = w.theirs.create(
        {
            "resourceType": "Procedure",
            "status": "completed",
            "code": {"text": "planted in another record"},
            "subject": {"reference": _ours_absolute(w, victim)},
        }
    )
    remote["status"] = "completed"
    remote["output"] = [_resulting(f"Procedure/{planted['id']}")]
    w.theirs.update(remote)
    _sync(w)
    in_victims_record = list(w.ours.search("Procedure", {"subject": victim}))
    assert in_victims_record == [], "a partner wrote a Procedure into another patient's record"


def test_a_remote_task_naming_one_of_our_tasks_it_was_never_sent_moves_nothing(w: World) -> None:
    victim_patient = _other_patient(w)
    victim = w.ours.create(
        {
            "resourceType": "Task",
            "status": "requested",
            "intent": "order",
            "for": {"reference": victim_patient},
            "owner": {"reference": w.coordinator},
            "description": "an internal follow-up, never sent anywhere",
        }
    )
    before = w.ours.read("Task", victim["id"])
    system, code = source_tag(w.exchange)
    w.theirs.create(
        {
            "resourceType": "Task",
            "meta": {"tag": [{"system": system, "code": code}]},
            "identifier": [{"system": URL_SYSTEM, "value": _ours_absolute(w, f"Task/{victim['id']}")}],
            "status": "rejected",
            "statusReason": {"text": "hijacked"},
            "intent": "order",
        }
    )
    _sync(w)
    after = w.ours.read("Task", victim["id"])
    assert after["status"] == "requested", "a partner moved a Task it was never sent"
    assert after["meta"]["versionId"] == before["meta"]["versionId"]


def test_a_remote_output_on_a_third_server_is_never_fetched_nor_linked(w: World) -> None:
    """Held: an output on a server that is neither ours nor the partner's is 'an output pointing
    nowhere': not applied, and no request (nor the partner's credentials) goes to the third server."""
    with FaultProxy(w.theirs.base_url) as third:
        task_id, request_id, remote = _sent(w)
        remote["status"] = "completed"
        remote["output"] = [_resulting(f"{third.base_url}/Procedure/anything")]
        w.theirs.update(remote)
        _sync(w)
        assert third.log.seen == []
    ours = w.ours.read("Task", task_id)
    assert ours["status"] == "requested" and not ours.get("output")
    assert w.ours.read("ServiceRequest", request_id)["status"] == "active"
    row = next(r for r in referrals(w.exchange, w.partner) if r["task"] == f"Task/{task_id}")
    assert any("output points nowhere" in why for why in row["not_applied"])


def test_a_remote_for_and_focus_moved_to_another_patient_are_not_applied(w: World) -> None:
    """Held: the partner re-points its Task at patient B (for) and B's referral (focus), then completes
    it: our Task keeps A and its own ServiceRequest; B's ServiceRequest is not touched."""
    victim = _other_patient(w)
    b_request = w.ours.create(
        {
            "resourceType": "ServiceRequest",
            "status": "active",
            "intent": "order",
            "subject": {"reference": victim},
        }
    )
    b_version = b_request["meta"]["versionId"]
    task_id, request_id, remote = _sent(w)
    remote["for"] = {"reference": _ours_absolute(w, victim)}
    remote["focus"] = {"reference": _ours_absolute(w, f"ServiceRequest/{b_request['id']}")}
    remote["status"] = "accepted"
    w.theirs.update(remote)
    _sync(w)
    ours = w.ours.read("Task", task_id)
    assert ours["for"]["reference"] == w.patient
    assert ours["focus"]["reference"] == f"ServiceRequest/{request_id}"
    assert ours["status"] == "accepted"
    latest = w.theirs.read("Task", remote["id"])
    latest["status"] = "completed"
    w.theirs.update(latest)
    _sync(w)
    assert w.ours.read("Task", task_id)["for"]["reference"] == w.patient
    assert w.ours.read("ServiceRequest", b_request["id"])["meta"]["versionId"] == b_version
    assert w.ours.read("ServiceRequest", b_request["id"])["status"] == "active"
    row = next(r for r in referrals(w.exchange, w.partner) if r["task"] == f"Task/{task_id}")
    assert any("for is requester-owned" in why for why in row["not_applied"])


def test_a_status_outside_the_value_set_carrying_markup_is_not_applied_nor_echoed(w: World) -> None:
    """Held: a status that is not a referral status is not applied, and what is recorded of it is cut
    short (no partner-supplied text of any length reaches the link)."""
    task_id, _, remote = _sent(w)
    remote["status"] = "ready"
    w.theirs.update(remote)
    _sync(w)
    ours = w.ours.read("Task", task_id)
    assert ours["status"] == "requested"
    row = next(r for r in referrals(w.exchange, w.partner) if r["task"] == f"Task/{task_id}")
    assert any("not a referral status" in why for why in row["not_applied"])


def test_a_hostile_partners_text_never_reaches_the_logs(w: World, caplog: pytest.LogCaptureFixture) -> None:
    """Held: a partner writing PHI into requester-owned fields, an off-set status and a reason, then
    moving a Task that is final here: every log record (message and fields, at DEBUG) names field names,
    codes and the partner, never the text, the patient or our ids."""
    import logging

    phi = "Jane Roe 123-45-6789"
    first, _, remote = _sent(w)
    remote.update(status="ready", description=f"{phi} description", note=[{"text": phi}])
    w.theirs.update(remote)
    second, _, other = _sent(w)
    final = w.ours.read("Task", second)
    w.ours.update({**final, "status": "cancelled"}, if_match=final["meta"]["versionId"])
    work(w.theirs, other["id"], "rejected", reason=f"{phi} reason")
    family = w.ours.read_reference(w.patient)["name"][0]["family"]
    with caplog.at_level(logging.DEBUG):
        _sync(w)
    ours = [r for r in caplog.records if r.name.startswith("fhircare")]
    said = {r.getMessage() for r in ours}
    assert "conflict with the partner" in said
    assert "partner changed a requester-owned field; not applied" in said
    for record in ours:
        text = record.getMessage() + " " + " ".join(str(v) for v in vars(record).values())
        for secret in ("Jane Roe", "123-45-6789", family, w.patient.split("/")[1], first, second):
            assert secret not in text, (record.name, record.getMessage())


def test_resolving_to_remote_takes_only_what_the_conflict_showed(w: World) -> None:
    from fhircare.exchange import resolve

    task_id, _, remote = _sent(w)
    for status in ("accepted", "in-progress"):
        work(w.theirs, remote["id"], status)
    work(w.theirs, remote["id"], "completed", outcome="done")
    ours = w.ours.read("Task", task_id)
    w.ours.update({**ours, "status": "cancelled"}, if_match=ours["meta"]["versionId"])
    assert _sync(w)["conflicts"] >= 1
    shown = next(r for r in referrals(w.exchange, w.partner) if r["task"] == f"Task/{task_id}")["conflict"]
    assert shown["remote"]["status"] == "completed"
    moved = w.theirs.read("Task", remote["id"])
    w.theirs.update({**moved, "status": "entered-in-error"})  # after the coordinator saw 'completed'
    try:
        resolve(w.exchange, task_id, "remote")
    except Exception:  # noqa: BLE001 - refusing is a fix; what matters is what our Task holds
        pass
    assert w.ours.read("Task", task_id)["status"] in ("cancelled", "completed")


def test_a_copy_naming_another_patient_through_another_spelling_of_our_base_stays_out_of_that_record(
    w: World,
) -> None:
    """Our server under another name (``localhost`` for ``127.0.0.1``, the scheme in capitals): a copy
    whose subject names patient B so must not land in B's record either."""
    from urllib.parse import urlsplit, urlunsplit

    victim = _other_patient(w)
    parts = urlsplit(w.exchange.partners.base)
    aliases = [
        urlunsplit((parts.scheme, f"localhost:{parts.port}", parts.path, "", "")),
        urlunsplit(("HTTP", parts.netloc, parts.path, "", "")),
        urlunsplit((parts.scheme, parts.netloc, parts.path + "/", "", "")),
    ]
    for alias in aliases:
        task_id, _, remote = _sent(w)
        planted = w.theirs.create(
            {
                "resourceType": "Procedure",
                "status": "completed",
                "code": {"text": "planted through an alias"},
                "subject": {"reference": f"{alias}/{victim}"},
            }
        )
        remote["status"] = "completed"
        remote["output"] = [_resulting(f"Procedure/{planted['id']}")]
        w.theirs.update(remote)
        _sync(w)
    assert list(w.ours.search("Procedure", {"subject": victim})) == []


# --- the sidecar's exchange routes ----------------------------------------------------------------


def _partners_with_hook(w: World, tmp_path: Path) -> Path:
    document = yaml.safe_load(w.partners_file.read_text(encoding="utf-8"))
    document["partners"][w.partner]["notify_secret_env"] = "ADV_HOOK_TOKEN"
    path = tmp_path / "partners-adversary.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


@pytest.fixture()
def dev_sidecar(w: World, tmp_path: Path) -> Any:
    settings = Settings(
        base_url=w.ours.base_url,
        partners_file=_partners_with_hook(w, tmp_path),
        partner_tokens=(("ADV_HOOK_TOKEN", HOOK_SECRET),),
        retries=1,
        backoff_factor=0.01,
        metrics=True,
    )
    with Sidecar(settings) as running:
        yield running


@pytest.fixture()
def w(world: World) -> World:  # noqa: F811 - the imported fixture
    return world


def test_the_hook_refuses_huge_malformed_or_unknown_and_wakes_nothing(w: World, dev_sidecar: Sidecar) -> None:
    """Held: a body over the limit, a body that is not JSON, a secret that is a prefix or an extension
    of the right one, a partner name that does not exist: nothing runs, the partner hears nothing, and
    /metrics gains no label for the unknown name."""
    task_id, _ = w.refer()
    hook = f"{dev_sidecar.url}{API}/hook/{w.partner}"
    for header in (
        f"Bearer {HOOK_SECRET[:-1]}",
        f"Bearer {HOOK_SECRET}x",
        f"bearer {HOOK_SECRET}",
        f"Basic {HOOK_SECRET}",
    ):
        answer = requests.post(hook, data=b"{", headers={"Authorization": header}, timeout=30)
        assert answer.status_code == 401, header
    huge = requests.post(
        hook, data=b"x" * 3_000_000, headers={"Content-Type": "application/json"}, timeout=60
    )
    assert huge.status_code in (401, 413)
    for name in ("nobody", "..%2F..%2Fmetrics", "a" * 300):
        unknown = requests.post(
            f"{dev_sidecar.url}{API}/hook/{name}",
            headers={"Authorization": f"Bearer {HOOK_SECRET}"},
            timeout=30,
        )
        assert unknown.status_code == 404, name
    assert w.remote_tasks(task_id) == [] and w.partner_requests() == 0
    metrics = requests.get(f"{dev_sidecar.url}/metrics", timeout=30).text
    assert "nobody" not in metrics and "a" * 50 not in metrics
    assert HOOK_SECRET not in metrics


def test_metrics_labels_stay_bounded_under_random_paths_and_workflow_names(
    w: World, dev_sidecar: Sidecar
) -> None:
    """Held: 50 random paths and workflow names add no label value (endpoint names are Flask's)."""
    for n in range(50):
        requests.get(f"{dev_sidecar.url}/random-{n}-{w.partner}", timeout=30)
        requests.post(f"{dev_sidecar.url}/api/v1/workflows/wf-{n}", json={}, timeout=30)
    text = requests.get(f"{dev_sidecar.url}/metrics", timeout=30).text
    assert "random-" not in text and "wf-" not in text
    lines = [line for line in text.splitlines() if line.startswith("fhircare_sidecar_requests_total{")]
    assert len(lines) < 15, lines


def test_a_patient_session_cannot_resolve_another_patients_conflict(w: World, tmp_path: Path) -> None:
    """Held: resolve (as send and cancel) is one 403 for another patient's Task and for none, and the
    conflict stays open; the same session's scope without Provenance.c cannot resolve its own."""
    other = _other_patient(w, "Otherpat")
    theirs_id, _ = w.refer("other's")
    task = w.ours.read("Task", theirs_id)
    w.ours.update({**task, "for": {"reference": other}})
    send(w.exchange, theirs_id)
    remote_id = w.remote_of(theirs_id)["id"]
    for status in ("accepted", "in-progress"):
        work(w.theirs, remote_id, status)
    work(w.theirs, remote_id, "completed", outcome="done")
    mine = w.ours.read("Task", theirs_id)
    w.ours.update({**mine, "status": "cancelled"}, if_match=mine["meta"]["versionId"])
    assert _sync(w)["conflicts"] >= 1
    before = w.ours.read("Task", theirs_id)["meta"]["versionId"]
    auth = AttackedAuthServer(w.ours.base_url)
    auth.start()
    port = free_port()
    auth.register(Client("fhircare-test", [f"http://127.0.0.1:{port}/callback"]))
    settings = smart_settings(
        auth.iss, port, partners_file=_partners_with_hook(w, tmp_path), retries=1, backoff_factor=0.01
    )
    try:
        with Sidecar(settings, port) as smart:
            browser = login(smart, auth, patient=w.patient)
            for body in (
                {"task": f"Task/{theirs_id}", "take": "remote"},
                {"task": "Task/not-there", "take": "local"},
            ):
                answer = browser.post(f"{smart.url}{API}/resolve", json=body, timeout=30)
                assert answer.status_code == 403, answer.text
            rows = browser.get(f"{smart.url}{API}/status", timeout=30)
            assert rows.headers["Fhircare-Conflicts"] == "0"
            assert all(r["task"] != f"Task/{theirs_id}" for r in rows.json())
            no_provenance = login(smart, auth, patient=w.patient, scope="launch openid patient/Task.rus")
            refused = no_provenance.post(
                f"{smart.url}{API}/resolve", json={"task": f"Task/{theirs_id}", "take": "remote"}, timeout=30
            )
            assert refused.status_code == 403
    finally:
        auth.stop()
    assert w.ours.read("Task", theirs_id)["meta"]["versionId"] == before
    row = next(r for r in referrals(w.exchange, w.partner) if r["task"] == f"Task/{theirs_id}")
    assert row["conflict"] is not None


def test_a_remote_output_of_a_type_no_referral_outcome_has_is_not_copied_here(w: World) -> None:
    victim = _other_patient(w)
    task_id, _, remote = _sent(w)
    planted_task = w.theirs.create(
        {
            "resourceType": "Task",
            "status": "requested",
            "intent": "order",
            "description": "call the patient back with the results",
            "for": {"reference": _ours_absolute(w, victim)},
            "owner": {"reference": _ours_absolute(w, w.coordinator)},
        }
    )
    remote["status"] = "completed"
    remote["output"] = [_resulting(f"Task/{planted_task['id']}")]
    w.theirs.update(remote)
    _sync(w)
    origin = f"{w.exchange.remote_base(w.partner)}/Task/{planted_task['id']}"
    planted_here = list(w.ours.search("Task", {"identifier": f"{URL_SYSTEM}|{origin}"}))
    assert planted_here == [], "a partner created a Task on our server, owned by our coordinator"
    assert list(w.ours.search("Task", {"owner": w.coordinator, "patient": victim})) == []


def test_versions_of_a_second_remote_task_naming_a_linked_task_are_not_applied(w: World) -> None:
    """The partner makes a second Task naming our (already linked) Task and rejects it: our Task must
    follow only the remote Task it is linked to."""
    task_id, request_id, remote = _sent(w)
    system, code = source_tag(w.exchange)
    second = w.theirs.create(
        {
            "resourceType": "Task",
            "meta": {"tag": [{"system": system, "code": code}]},
            "identifier": [{"system": URL_SYSTEM, "value": _ours_absolute(w, f"Task/{task_id}")}],
            "status": "accepted",
            "intent": "order",
        }
    )
    # a second version, so its version id is not the linked Task's (both "1" on the embedded server)
    w.theirs.update({**second, "status": "rejected", "statusReason": {"text": "from a second Task"}})
    _sync(w)
    ours = w.ours.read("Task", task_id)
    assert ours["status"] == "requested", "a Task other than the linked one moved ours"
    assert w.ours.read("ServiceRequest", request_id)["status"] == "active"


# --- a partner's server that answers searches as it likes ---------------------------------------------


class HostilePartner:
    """A partner 'FHIR server' (standard library HTTP) answering every Task search with ``body(n)`` for
    the n-th search; after ``limit`` searches it answers 503, so a cycle that would never end does."""

    def __init__(self, body: Any, limit: int = 200) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        owner = self
        self.searches = 0
        self.limit = limit

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                if self.path.split("?")[0].endswith("/metadata"):
                    payload = b'{"resourceType":"CapabilityStatement","status":"active","kind":"instance","fhirVersion":"4.0.1","format":["json"]}'
                    return self._send(200, payload)
                owner.searches += 1
                if owner.searches > owner.limit:
                    return self._send(503, b"{}")
                return self._send(200, body(owner.searches))

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                self._send(503, b"{}")

            def _send(self, status: int, payload: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/fhir+json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/fhir"

    def __enter__(self) -> HostilePartner:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def _exchange_with(w: World, base: str) -> Any:
    from fhircare.exchange import Exchange, parse_partners

    document = yaml.safe_load(w.partners_file.read_text(encoding="utf-8"))
    document["partners"][w.partner]["base"] = base
    return Exchange(w.exchange.settings, parse_partners(document, str(w.partners_file)), w.ours)


def _search_page(tasks: int, updated: str, padding: int = 0) -> bytes:
    import json

    entries = [
        {
            "resource": {
                "resourceType": "Task",
                "id": f"t{n}",
                "meta": {"versionId": "1", "lastUpdated": updated},
                "status": "requested",
                "intent": "order",
                "identifier": [{"system": URL_SYSTEM, "value": f"http://elsewhere.invalid/Task/{n}"}],
            },
            "search": {"mode": "match"},
        }
        for n in range(tasks)
    ]
    if padding:
        entries[0]["resource"]["description"] = "x" * padding
    return json.dumps({"resourceType": "Bundle", "type": "searchset", "entry": entries}).encode()


def test_a_partner_repeating_the_same_full_page_cannot_hold_the_cycle(w: World) -> None:
    page = _search_page(100, at(-1, "09:00"))
    with HostilePartner(lambda n: page) as hostile, _exchange_with(w, hostile.base_url) as exchange:
        sync_once(exchange, w.partner)
        assert hostile.searches <= 10, f"one cycle asked the partner {hostile.searches} times"


def test_an_enormous_search_page_from_a_partner_is_refused(w: World) -> None:
    import tracemalloc

    from fhircare.exchange.sync import sync_partner

    huge = _search_page(1, at(-1, "09:00"), padding=64 * 1024 * 1024)
    with HostilePartner(lambda n: huge, limit=5) as hostile, _exchange_with(w, hostile.base_url) as exchange:
        tracemalloc.start()
        try:
            report = sync_partner(exchange, exchange.partners.get(w.partner))
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    # reading the 64 MB answer whole costs more than 64 MiB; a bounded read stays well under it
    assert peak < 48 * 1024 * 1024, f"the worker held {peak // (1024 * 1024)} MiB for one partner answer"
    assert report.errors == 1  # refused as a partner answer not applied, and said so


# --- the light pattern: a partner's staff working its Task on our server through the sidecar -------


@pytest.fixture(scope="module")
def partner_staff(light: Any) -> Any:  # noqa: F811 - the light-pattern sidecar (test_light_guard.py)
    return light


def test_a_partner_caller_cannot_name_another_patients_procedure_as_its_outcome(partner_staff: Any) -> None:
    staff = partner_staff
    task_id, _ = staff.refer(staff.org_a)
    other = staff.client.create({"resourceType": "Patient", "name": [{"family": "Elsewhere"}]})
    procedure = staff.client.create(
        {
            "resourceType": "Procedure",
            "status": "completed",
            "code": {"text": "another patient's procedure"},
            "subject": {"reference": f"Patient/{other['id']}"},
        }
    )
    for status in ("accepted", "in-progress"):
        assert staff.transition(task_id, {"to": status}).status_code == 201
    before = staff.client.read("Task", task_id)
    answer = staff.transition(
        task_id, {"to": "completed", "outcome": {"reference": f"Procedure/{procedure['id']}"}}
    )
    after = staff.client.read("Task", task_id)
    assert f"Procedure/{procedure['id']}" not in _outputs(after), "another patient's Procedure linked"
    assert after["meta"]["versionId"] == before["meta"]["versionId"]
    assert answer.status_code in (403, 422)


def test_our_coordinator_cannot_undo_a_completion_the_partners_staff_made(partner_staff: Any) -> None:
    from tests.exchange.test_light_guard import CLINIC_APP

    staff = partner_staff
    task_id, request_id = staff.refer(staff.org_a)
    for body in ({"to": "accepted"}, {"to": "in-progress"}, {"to": "completed", "outcome": {"code": "x1"}}):
        assert staff.transition(task_id, body).status_code == 201
    completed = staff.client.read("Task", task_id)
    answer = requests.post(
        f"{staff.backend.url}/api/v1/workflows/undo-complete",
        json={"task": f"Task/{task_id}", "actor": staff.coordinator},
        headers=staff.headers(CLINIC_APP),
        timeout=30,
    )
    after = staff.client.read("Task", task_id)
    assert after["status"] == "completed", f"the partner's completion was undone ({answer.status_code})"
    assert after["meta"]["versionId"] == completed["meta"]["versionId"]
    assert staff.client.read("ServiceRequest", request_id)["status"] == "completed"


def test_cancel_needs_the_scopes_of_everything_it_writes(w: World, tmp_path: Path) -> None:
    task_id, request_id, remote = _sent(w)
    auth = AttackedAuthServer(w.ours.base_url)
    auth.start()
    port = free_port()
    auth.register(Client("fhircare-test", [f"http://127.0.0.1:{port}/callback"]))
    settings = smart_settings(
        auth.iss, port, partners_file=_partners_with_hook(w, tmp_path), retries=1, backoff_factor=0.01
    )
    try:
        with Sidecar(settings, port) as smart:
            browser = login(smart, auth, scope="launch openid fhirUser user/Task.rus user/Provenance.c")
            answer = browser.post(
                f"{smart.url}{API}/cancel", json={"task": f"Task/{task_id}", "reason": "moved"}, timeout=60
            )
    finally:
        auth.stop()
    assert w.ours.read("ServiceRequest", request_id)["status"] == "active", (
        f"revoked without ServiceRequest.u ({answer.status_code})"
    )
    assert w.remote_of(task_id)["status"] == "requested"
    assert answer.status_code == 403


def test_a_deeply_nested_partner_answer_is_reported_not_raised(w: World) -> None:
    depth = 200_000
    nested = b'{"resourceType":"Bundle","type":"searchset","entry":' + b"[" * depth + b"]" * depth + b"}"
    with (
        HostilePartner(lambda n: nested, limit=5) as hostile,
        _exchange_with(w, hostile.base_url) as exchange,
    ):
        try:
            report = sync_once(exchange, w.partner)["partners"][w.partner]
        except RecursionError:
            report = None
    assert report is not None, "one partner's answer raised out of the whole sync"


def test_the_exchange_routes_answer_a_deeply_nested_body_400(w: World, dev_sidecar: Sidecar) -> None:
    """Held: a body nested deeper than the parser recurses is bad input (400 naming $), never a 500."""
    nested = b'{"task":' + b"[" * 200_000 + b"]" * 200_000 + b"}"
    for route in ("send", "cancel", "resolve"):
        answer = requests.post(
            f"{dev_sidecar.url}{API}/{route}",
            data=nested,
            headers={"Content-Type": "application/json"},
            timeout=30,
        )
        assert answer.status_code == 400, (route, answer.status_code)
    assert w.partner_requests() == 0


def test_a_partner_task_with_a_lastupdated_that_is_no_instant_is_reported_not_raised(w: World) -> None:
    page = _search_page(1, "yesterday, around noon")
    with HostilePartner(lambda n: page, limit=5) as hostile, _exchange_with(w, hostile.base_url) as exchange:
        try:
            report = sync_once(exchange, w.partner)["partners"][w.partner]
        except ValueError:
            report = None
    assert report is not None, "one partner's timestamp raised out of the whole sync"


def test_each_partners_hook_takes_only_its_own_secret(w: World, tmp_path: Path) -> None:
    """Held: with three partners - two with secrets, one without - a secret opens only its own
    partner's hook; a partner without a secret variable refuses every notification."""
    other = w.ours.create({"resourceType": "Organization", "name": "Other partner"})
    silent = w.ours.create({"resourceType": "Organization", "name": "Silent partner"})
    document = yaml.safe_load(w.partners_file.read_text(encoding="utf-8"))
    mine = document["partners"][w.partner]
    mine["notify_secret_env"] = "ADV_HOOK_TOKEN"
    document["partners"]["other"] = {
        **mine,
        "organization": f"Organization/{other['id']}",
        "notify_secret_env": "OTHER_HOOK_TOKEN",
    }
    document["partners"]["silent"] = {
        k: v
        for k, v in {**mine, "organization": f"Organization/{silent['id']}"}.items()
        if k != "notify_secret_env"
    }
    path = tmp_path / "partners-three.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    other_secret = "another-partners-secret"
    settings = Settings(
        base_url=w.ours.base_url,
        partners_file=path,
        partner_tokens=(("ADV_HOOK_TOKEN", HOOK_SECRET), ("OTHER_HOOK_TOKEN", other_secret)),
        retries=1,
        backoff_factor=0.01,
    )
    with Sidecar(settings) as running:

        def hook(name: str, secret: str) -> int:
            url = f"{running.url}{API}/hook/{name}"
            return requests.post(url, headers={"Authorization": f"Bearer {secret}"}, timeout=30).status_code

        assert hook("other", HOOK_SECRET) == 401
        assert hook(w.partner, other_secret) == 401
        assert hook("silent", HOOK_SECRET) == 401 and hook("silent", other_secret) == 401
        assert hook("silent", "") == 401
        assert hook("other", other_secret) == 200
        assert hook(w.partner, HOOK_SECRET) == 200


class Scripted:
    """A tiny HTTP server: ``answer(method, path) -> (status, body)``; records every request and the
    Authorization header it carried."""

    def __init__(self, answer: Any) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        owner = self
        self.seen: list[tuple[str, str, str]] = []

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                owner.seen.append((self.command, self.path, self.headers.get("Authorization", "")))
                status, body = answer(self.command, self.path)
                self.send_response(status)
                self.send_header("Content-Type", "application/fhir+json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = _any  # noqa: N815 - http.server's names

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/fhir"

    def __enter__(self) -> Scripted:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("elsewhere_path", ["/fhir", "/other"])
def test_a_partners_next_link_to_another_host_never_carries_its_token_there(
    w: World, elsewhere_path: str
) -> None:
    """Held: the partner answers the conditional create with no body, then the search for the Task with
    an empty page whose next link names a third host (under the same base path, or another): no request,
    and so not the partner's bearer token, reaches the third host."""
    import json

    from fhircare.exchange import Exchange, parse_partners

    with Scripted(lambda method, path: (200, b"{}")) as third:
        elsewhere = third.base_url.replace("/fhir", elsewhere_path)

        def partner(method: str, path: str) -> tuple[int, bytes]:
            if method == "POST":
                return 201, b""
            page = {
                "resourceType": "Bundle",
                "type": "searchset",
                "entry": [],
                "link": [{"relation": "next", "url": f"{elsewhere}/Task?page=2"}],
            }
            return 200, json.dumps(page).encode()

        with Scripted(partner) as hostile:
            document = yaml.safe_load(w.partners_file.read_text(encoding="utf-8"))
            document["partners"][w.partner].update(
                base=hostile.base_url, auth={"mode": "bearer", "token_env": "ADV_PARTNER_TOKEN"}
            )
            settings = Settings(
                **{**w.exchange.settings.__dict__, "partner_tokens": (("ADV_PARTNER_TOKEN", "s3cret-token"),)}
            )
            task_id, _ = w.refer()
            with Exchange(settings, parse_partners(document, str(w.partners_file)), w.ours) as exchange:
                try:
                    send(exchange, task_id)
                except Exception:  # noqa: BLE001 - refusing is right; what matters is where requests went
                    pass
            assert any(auth == "Bearer s3cret-token" for _, _, auth in hostile.seen)  # the partner got it
            assert any(method == "GET" for method, _, _ in hostile.seen)  # and was searched
        assert third.seen == [], third.seen


def test_one_remote_version_cannot_make_hundreds_of_writes_here(w: World) -> None:
    task_id, _, remote = _sent(w)
    subject = {"reference": _ours_absolute(w, w.patient)}
    outputs = []
    for n in range(200):
        made = w.theirs.create(
            {"resourceType": "Observation", "status": "final", "code": {"text": f"o{n}"}, "subject": subject}
        )
        outputs.append(_resulting(f"Observation/{made['id']}"))
    remote["status"] = "completed"
    remote["output"] = outputs
    w.theirs.update(remote)
    before = w.ours.request_count
    _sync(w)
    copies = list(w.ours.search("Observation", {"subject": w.patient}))
    assert len(copies) <= 20, f"{len(copies)} copies written for one remote version"
    assert w.ours.request_count - before < 60


def test_the_listen_hook_drops_a_notification_whose_body_never_comes(w: World) -> None:
    import socket
    import threading
    from datetime import timedelta

    from fhircare.exchange.listen import Worker, make_server

    worker = Worker(w.exchange, [w.partner], unready_after=timedelta(hours=1))
    port = free_port()
    server = make_server(worker, "127.0.0.1", port)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as held:
            held.sendall(b"POST /hook/nobody HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
            held.settimeout(12)
            try:
                answered = held.recv(1024) is not None  # an answer, or the server closing it
            except TimeoutError:
                answered = False
        assert answered, "the hook still waits for a body that never comes"
    finally:
        server.shutdown()
        server.server_close()


def test_our_coordinator_cannot_set_the_partners_statuses_on_a_sent_referral(
    w: World, dev_sidecar: Sidecar
) -> None:
    task_id, request_id, remote = _sent(w)
    before = w.ours.read("Task", task_id)["meta"]["versionId"]
    url = f"{dev_sidecar.url}/api/v1/tasks/{task_id}/transition"
    answer = requests.post(url, json={"to": "accepted", "actor": w.coordinator}, timeout=30)
    assert w.ours.read("Task", task_id)["meta"]["versionId"] == before, f"moved here ({answer.status_code})"
    assert w.remote_of(task_id)["status"] == "requested"
