"""The exchange through the real sidecar (HTTP on loopback), on both partner pairs: send, status, a
partner's change synced, cancel and resolve, 409 on a conflict, the hook's secret, a patient session
kept to its patient (nothing sent for another's Task: the partner's server is read), /metrics without
PHI, the owner's guard on the task-transition route and the sync loop inside the sidecar."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families

from fhircare.exchange import sync_once, work
from fhircare.server.launcher import free_port
from fhircare.settings import Settings
from tests.exchange.conftest import World
from tests.integration.sidecar_harness import Sidecar, smart_settings
from tests.integration.smart_server import Client
from tests.security.conftest import AttackedAuthServer, login

HOOK_SECRET = "sidecar-hook-secret-for-tests"
API = "/api/v1/exchange"


def _partners_with_hook(world: World, tmp_path: Path) -> Path:
    document = yaml.safe_load(world.partners_file.read_text(encoding="utf-8"))
    document["partners"][world.partner]["notify_secret_env"] = "FB_HOOK_TOKEN"
    path = tmp_path / "partners-hook.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


def _settings(world: World, tmp_path: Path, **extra: Any) -> Settings:
    return Settings(
        base_url=world.ours.base_url,
        partners_file=_partners_with_hook(world, tmp_path),
        partner_tokens=(("FB_HOOK_TOKEN", HOOK_SECRET),),
        retries=1,
        backoff_factor=0.01,
        **extra,
    )


@pytest.fixture()
def sidecar(world: World, tmp_path: Path) -> Iterator[Sidecar]:
    with Sidecar(_settings(world, tmp_path, metrics=True)) as running:
        yield running


def _wait(predicate: Callable[[], bool], seconds: float = 30.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def _row(sidecar: Sidecar, task_id: str) -> dict[str, Any]:
    rows = requests.get(f"{sidecar.url}{API}/status", timeout=30).json()
    return next(r for r in rows if r["task"] == f"Task/{task_id}")


def test_send_status_a_partner_change_synced_then_cancel(world: World, sidecar: Sidecar) -> None:
    task_id, request_id = world.refer()
    first = requests.post(f"{sidecar.url}{API}/send", json={"task": f"Task/{task_id}"}, timeout=30)
    assert first.status_code == 201, first.text
    assert first.json()["created"] is True and first.json()["partner"] == world.partner
    again = requests.post(f"{sidecar.url}{API}/send", json={"task": f"Task/{task_id}"}, timeout=30)
    assert (again.status_code, again.json()["created"]) == (200, False)
    assert len(world.remote_tasks(task_id)) == 1
    row = _row(sidecar, task_id)
    assert (row["local_status"], row["remote_status"], row["conflict"]) == ("requested", "requested", None)
    work(world.theirs, world.remote_of(task_id)["id"], "accepted")
    sync_once(world.exchange, world.partner)
    assert _row(sidecar, task_id)["local_status"] == "accepted"
    cancelled = requests.post(
        f"{sidecar.url}{API}/cancel", json={"task": f"Task/{task_id}", "reason": "moved away"}, timeout=30
    )
    assert cancelled.status_code == 200 and cancelled.json()["outcome"] == "cancelled", cancelled.text
    assert world.remote_of(task_id)["status"] == "cancelled"
    assert world.ours.read("Task", task_id)["status"] == "cancelled"
    assert world.ours.read("ServiceRequest", request_id)["status"] == "revoked"


def test_a_conflict_is_409_and_resolve_ends_it(world: World, sidecar: Sidecar) -> None:
    task_id, request_id = world.refer()
    requests.post(f"{sidecar.url}{API}/send", json={"task": f"Task/{task_id}"}, timeout=30).raise_for_status()
    remote_id = world.remote_of(task_id)["id"]
    for status in ("accepted", "in-progress"):
        work(world.theirs, remote_id, status)
    work(world.theirs, remote_id, "completed", outcome="Delivered")
    ours_before = world.ours.read("Task", task_id)["meta"]["versionId"]
    clash = requests.post(
        f"{sidecar.url}{API}/cancel", json={"task": f"Task/{task_id}", "reason": "not needed"}, timeout=30
    )
    assert clash.status_code == 409, clash.text
    outcome = clash.json()
    assert outcome["resourceType"] == "OperationOutcome" and outcome["issue"][0]["code"] == "conflict"
    assert "completed" in outcome["issue"][0]["diagnostics"]
    assert world.remote_of(task_id)["status"] == "completed"
    assert world.ours.read("ServiceRequest", request_id)["status"] == "active"
    status = requests.get(f"{sidecar.url}{API}/status", timeout=30)
    assert int(status.headers["Fhircare-Conflicts"]) >= 1
    assert ours_before  # our Task kept its status; the conflict is on its link
    bad = requests.post(
        f"{sidecar.url}{API}/resolve", json={"task": f"Task/{task_id}", "take": "both"}, timeout=30
    )
    assert bad.status_code == 400 and bad.json()["issue"][0]["expression"] == ["$.take"]
    resolved = requests.post(
        f"{sidecar.url}{API}/resolve", json={"task": f"Task/{task_id}", "take": "remote"}, timeout=30
    )
    assert resolved.status_code == 200, resolved.text
    assert world.ours.read("Task", task_id)["status"] == "completed"
    assert _row(sidecar, task_id)["conflict"] is None


def test_bad_input_is_400_naming_the_path_and_unknown_ones_are_404(world: World, sidecar: Sidecar) -> None:
    before = world.partner_requests()
    cases = [
        ({"task": "Patient/1"}, 400, "$.task"),
        ({}, 400, "$.task"),
        ({"task": "Task/x", "extra": 1}, 400, "$.extra"),
    ]
    for body, code, path in cases:
        answer = requests.post(f"{sidecar.url}{API}/send", json=body, timeout=30)
        assert answer.status_code == code, answer.text
        assert answer.json()["issue"][0]["expression"] == [path]
    not_json = requests.post(
        f"{sidecar.url}{API}/send", data="task", headers={"Content-Type": "application/json"}, timeout=30
    )
    assert not_json.status_code == 400 and not_json.json()["issue"][0]["expression"] == ["$"]
    missing = requests.post(f"{sidecar.url}{API}/send", json={"task": "Task/does-not-exist"}, timeout=30)
    assert missing.status_code == 404
    cancel = requests.post(f"{sidecar.url}{API}/cancel", json={"task": "Task/x"}, timeout=30)
    assert cancel.status_code == 400 and cancel.json()["issue"][0]["expression"] == ["$.reason"]
    unknown = requests.get(f"{sidecar.url}{API}/status", params={"partner": "nobody"}, timeout=30)
    assert unknown.status_code == 404
    # a Task no partner owns: the CLI's exit 2
    own = {
        "resourceType": "Task",
        "status": "requested",
        "intent": "order",
        "for": {"reference": world.patient},
    }
    task = "Task/" + world.ours.create({**own, "owner": {"reference": world.coordinator}})["id"]
    assert requests.post(f"{sidecar.url}{API}/send", json={"task": task}, timeout=30).status_code == 400
    assert world.partner_requests() == before


def test_the_hook_needs_the_partners_secret_and_only_wakes_its_sync(world: World, sidecar: Sidecar) -> None:
    task_id, _ = world.refer()
    hook = f"{sidecar.url}{API}/hook/{world.partner}"
    for header in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": HOOK_SECRET}):
        answer = requests.post(hook, json={"resourceType": "Bundle"}, headers=header, timeout=30)
        assert answer.status_code == 401 and answer.json()["resourceType"] == "OperationOutcome"
    time.sleep(1.0)
    assert world.remote_tasks(task_id) == [] and world.partner_requests() == 0
    assert requests.post(f"{sidecar.url}{API}/hook/nobody", headers={}, timeout=30).status_code == 404
    woken = requests.post(hook, json={}, headers={"Authorization": f"Bearer {HOOK_SECRET}"}, timeout=30)
    assert woken.status_code == 200
    assert _wait(lambda: len(world.remote_tasks(task_id)) == 1)  # the woken cycle sent the unsent


def test_metrics_parse_and_hold_no_phi_and_are_off_unless_enabled(
    world: World, sidecar: Sidecar, tmp_path: Path
) -> None:
    task_id, _ = world.refer()
    requests.post(f"{sidecar.url}{API}/send", json={"task": f"Task/{task_id}"}, timeout=30).raise_for_status()
    requests.post(
        f"{sidecar.url}{API}/hook/{world.partner}", headers={"Authorization": "Bearer x"}, timeout=30
    )
    requests.post(f"{sidecar.url}/api/v1/workflows/refer", json={"patient": "nope"}, timeout=30)
    requests.get(f"{sidecar.url}{API}/status", timeout=30)
    answer = requests.get(f"{sidecar.url}/metrics", timeout=30)
    assert answer.status_code == 200 and answer.headers["Content-Type"].startswith("text/plain")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(answer.text)
        for s in family.samples
    }
    assert samples[("fhircare_exchange_sent_total", (("partner", world.partner),))] == 1
    assert samples[("fhircare_exchange_reachable", (("partner", world.partner),))] == 1
    assert (
        samples[
            ("fhircare_exchange_notifications_total", (("outcome", "refused"), ("partner", world.partner)))
        ]
        == 1
    )
    assert samples[("fhircare_workflow_runs_total", (("outcome", "refused"), ("workflow", "refer")))] == 1
    assert (
        samples[("fhircare_sidecar_requests_total", (("endpoint", "exchange_api.send"), ("status", "201")))]
        == 1
    )
    patient = world.ours.read_reference(world.patient)
    for secret in (world.patient.split("/")[1], task_id, patient["name"][0]["family"], "Task/", "Patient/"):
        assert secret not in answer.text
    outcomes = {dict(labels)["outcome"] for name, labels in samples if name == "fhircare_workflow_runs_total"}
    assert outcomes <= {"written", "repeated", "dry_run", "refused", "conflict", "failed"}
    with Sidecar(Settings(base_url=world.ours.base_url)) as plain:  # FHIRCARE_METRICS unset: no /metrics
        assert requests.get(f"{plain.url}/metrics", timeout=30).status_code == 404
        unset = requests.post(f"{plain.url}{API}/send", json={"task": f"Task/{task_id}"}, timeout=30)
        assert unset.status_code == 404 and "FHIRCARE_PARTNERS" in unset.text  # no partners: no exchange


def test_a_patient_session_sees_and_acts_on_its_own_patients_referrals_only(
    world: World, our_server: Any, tmp_path: Path
) -> None:
    other = world.ours.create({"resourceType": "Patient", "name": [{"family": "Otherpatient"}]})
    theirs_id, _ = world.refer("other's")
    task = world.ours.read("Task", theirs_id)
    world.ours.update({**task, "for": {"reference": f"Patient/{other['id']}"}})
    mine_id, _ = world.refer("mine")
    auth = AttackedAuthServer(our_server.base_url)
    auth.start()
    port = free_port()
    auth.register(Client("fhircare-test", [f"http://127.0.0.1:{port}/callback"]))
    settings = smart_settings(
        auth.iss,
        port,
        partners_file=_partners_with_hook(world, tmp_path),
        retries=1,
        backoff_factor=0.01,
    )
    try:
        with Sidecar(settings, port) as smart:
            browser = login(smart, auth, patient=world.patient)
            refused = browser.post(f"{smart.url}{API}/send", json={"task": f"Task/{theirs_id}"}, timeout=30)
            assert refused.status_code == 403, refused.text
            for body in (
                {"task": f"Task/{theirs_id}", "reason": "x"},
                {"task": "Task/nothing-here", "reason": "x"},
            ):
                assert browser.post(f"{smart.url}{API}/cancel", json=body, timeout=30).status_code == 403
            assert world.remote_tasks(theirs_id) == [] and world.partner_requests() == 0
            mine = browser.post(f"{smart.url}{API}/send", json={"task": f"Task/{mine_id}"}, timeout=30)
            assert mine.status_code == 201, mine.text
            from fhircare.exchange import send

            send(world.exchange, theirs_id)  # sent by someone else: exists, but not this session's
            rows = browser.get(f"{smart.url}{API}/status", timeout=30).json()
            assert [r["task"] for r in rows] == [f"Task/{mine_id}"]
            other_rows = browser.get(
                f"{smart.url}{API}/status", params={"patient": f"Patient/{other['id']}"}, timeout=30
            )
            assert other_rows.status_code == 403
            reader = login(smart, auth, patient=world.patient, scope="launch openid patient/Task.rs")
            again = reader.post(f"{smart.url}{API}/send", json={"task": f"Task/{mine_id}"}, timeout=30)
            assert again.status_code == 403  # no write scope on Task
    finally:
        auth.stop()


def test_the_owner_acting_through_the_transition_route_changes_only_its_fields(
    world: World, sidecar: Sidecar
) -> None:
    task_id, _ = world.refer()
    url = f"{sidecar.url}/api/v1/tasks/{task_id}/transition"
    version = world.ours.read("Task", task_id)["meta"]["versionId"]
    refused = requests.post(url, json={"note": "we changed the plan", "on_behalf_of": world.org}, timeout=30)
    assert refused.status_code == 422, refused.text
    assert "$.note" in refused.json()["issue"][0]["expression"]
    assert world.ours.read("Task", task_id)["meta"]["versionId"] == version
    taken = requests.post(url, json={"to": "accepted", "on_behalf_of": world.org}, timeout=30)
    assert taken.status_code == 201, taken.text
    assert world.ours.read("Task", task_id)["status"] == "accepted"
    clinic = world.exchange.partners.organization  # the requester acting: its fields are its own
    noted = requests.post(url, json={"note": "call first", "on_behalf_of": clinic}, timeout=30)
    assert noted.status_code == 201, noted.text


def test_the_sync_loop_runs_inside_the_sidecar_and_stops_cleanly(world: World, tmp_path: Path) -> None:
    task_id, _ = world.refer()
    running = Sidecar(_settings(world, tmp_path, sync_in_sidecar=True, metrics=True))
    with running:
        holder = running.app.extensions["fhircare.exchange"]
        assert holder.running
        assert _wait(lambda: len(world.remote_tasks(task_id)) == 1)
        work(world.theirs, world.remote_of(task_id)["id"], "accepted")
        assert _wait(lambda: world.ours.read("Task", task_id)["status"] == "accepted")
        assert requests.get(f"{running.url}/readyz", timeout=30).status_code == 200
        thread = holder.thread
        holder.stop()
        assert not thread.is_alive() and not holder.running


def test_readyz_fails_when_the_in_sidecar_sync_finds_a_partner_down_too_long(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import timedelta

    from fhircare.web import exchange_runtime

    monkeypatch.setattr(exchange_runtime, "unready_after", lambda: timedelta(seconds=0))
    world.proxy.inject("503", times=10_000)
    task_id, _ = world.refer()
    with Sidecar(_settings(world, tmp_path, sync_in_sidecar=True)) as running:
        holder = running.app.extensions["fhircare.exchange"]
        assert _wait(lambda: requests.get(f"{running.url}/readyz", timeout=30).status_code == 503)
        answer = requests.get(f"{running.url}/readyz", timeout=30).json()
        assert (
            answer["reason"] == "a partner is unreachable" and world.partner in answer["unreachable_seconds"]
        )
        assert world.ours.read("Task", task_id)["status"] == "requested"  # down is no business event
        world.proxy.clear()
        assert _wait(lambda: requests.get(f"{running.url}/readyz", timeout=30).status_code == 200, 60)
        holder.stop()


def test_a_cancel_while_the_partner_is_down_is_pending_and_openapi_describes_the_routes(
    world: World, sidecar: Sidecar
) -> None:
    task_id, _ = world.refer()
    requests.post(f"{sidecar.url}{API}/send", json={"task": f"Task/{task_id}"}, timeout=30).raise_for_status()
    world.proxy.inject("503", times=10_000)
    pending = requests.post(
        f"{sidecar.url}{API}/cancel", json={"task": f"Task/{task_id}", "reason": "moved"}, timeout=60
    )
    assert pending.status_code == 202 and pending.json()["outcome"] == "pending", pending.text
    assert world.ours.read("Task", task_id)["status"] == "requested"  # no business event
    assert _row(sidecar, task_id)["cancel_pending"] is True
    world.proxy.clear()
    assert world.remote_of(task_id)["status"] == "requested"
    document = requests.get(f"{sidecar.url}/api/v1/openapi.json", timeout=30).json()
    for route in ("send", "status", "cancel", "resolve", "hook/{partner}"):
        assert f"{API}/{route}" in document["paths"], route


def test_a_partners_staff_reach_no_exchange_route_and_nothing_reaches_the_partner(
    world: World, our_server: Any, tmp_path: Path
) -> None:
    """The light pattern's guard on the exchange routes: a SMART user listed under the partner's
    ``callers`` may not send, cancel, resolve or read the status (403, nothing sent), and without
    ``on_behalf_of`` is still the performer on the transition route."""
    from tests.exchange.test_light_guard import _login

    staff = world.ours.create({"resourceType": "Practitioner", "name": [{"family": "Partnerstaff"}]})
    document = yaml.safe_load(_partners_with_hook(world, tmp_path).read_text(encoding="utf-8"))
    document["partners"][world.partner]["callers"] = [f"Practitioner/{staff['id']}"]
    path = tmp_path / "partners-callers.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    task_id, _ = world.refer()
    before = world.ours.read("Task", task_id)
    auth = AttackedAuthServer(our_server.base_url)
    auth.start()
    port = free_port()
    auth.register(Client("fhircare-test", [f"http://127.0.0.1:{port}/callback"]))
    settings = smart_settings(auth.iss, port, partners_file=path, retries=1, backoff_factor=0.01)
    try:
        with Sidecar(settings, port) as smart:
            browser = _login(smart, auth, f"Practitioner/{staff['id']}")
            task = f"Task/{task_id}"
            for route, body in (
                ("send", {"task": task}),
                ("cancel", {"task": task, "reason": "x"}),
                ("resolve", {"task": task, "take": "local"}),
            ):
                answer = browser.post(f"{smart.url}{API}/{route}", json=body, timeout=30)
                assert answer.status_code == 403, (route, answer.text)
                assert answer.json()["resourceType"] == "OperationOutcome"
            assert browser.get(f"{smart.url}{API}/status", timeout=30).status_code == 403
            assert world.partner_requests() == 0 and world.remote_tasks(task_id) == []
            url = f"{smart.url}/api/v1/tasks/{task_id}/transition"
            noted = browser.post(url, json={"note": "we changed the plan"}, timeout=30)
            assert noted.status_code == 422 and "$.note" in noted.json()["issue"][0]["expression"]
            assert world.ours.read("Task", task_id) == before
            taken = browser.post(url, json={"to": "accepted"}, timeout=30)
            assert taken.status_code == 201, taken.text
    finally:
        auth.stop()


# --- every route checks the scopes of all it writes, before anything is written here or there --------


def _written_on(base_url: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, set[str]]:
    """The resource types the sidecar creates ('c') and updates ('u') on the server at ``base_url``
    (the sidecar runs in this process: its FhirClient's writes are recorded as they are sent)."""
    from fhircare.fhir import FhirClient

    seen: dict[str, set[str]] = {"c": set(), "u": set()}
    originals = {name: getattr(FhirClient, name) for name in ("create", "update", "transaction")}

    def mine(client: Any) -> bool:
        return str(client.base_url).rstrip("/") == base_url.rstrip("/")

    def create(self: Any, resource: dict[str, Any], *a: Any, **k: Any) -> Any:
        if mine(self):
            seen["c"].add(resource["resourceType"])
        return originals["create"](self, resource, *a, **k)

    def update(self: Any, resource: dict[str, Any], *a: Any, **k: Any) -> Any:
        if mine(self):
            seen["u"].add(resource["resourceType"])
        return originals["update"](self, resource, *a, **k)

    def transaction(self: Any, bundle: dict[str, Any], *a: Any, **k: Any) -> Any:
        if mine(self):
            for entry in bundle.get("entry") or []:
                kind = "c" if entry["request"]["method"] == "POST" else "u"
                seen[kind].add(entry["resource"]["resourceType"])
        return originals["transaction"](self, bundle, *a, **k)

    for name, patched in (("create", create), ("update", update), ("transaction", transaction)):
        monkeypatch.setattr(FhirClient, name, patched)
    return seen


def test_each_routes_scope_table_covers_what_it_writes(
    world: World, sidecar: Sidecar, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cancel (catching up with the partner first) and resolve (copying the partner's outcome) write
    only types their scope table (exchange_api.writes) names, as created or as updated."""
    from fhircare.web.exchange_api import writes

    caught_up, request_id = world.refer()
    clash, _ = world.refer("clash")
    for task_id in (caught_up, clash):
        requests.post(
            f"{sidecar.url}{API}/send", json={"task": f"Task/{task_id}"}, timeout=30
        ).raise_for_status()
    work(world.theirs, world.remote_of(caught_up)["id"], "accepted")  # not synced: cancel catches up
    remote = world.remote_of(clash)["id"]
    for status in ("accepted", "in-progress"):
        work(world.theirs, remote, status)
    work(world.theirs, remote, "completed", outcome="Delivered")
    seen = _written_on(world.ours.base_url, monkeypatch)
    for task_id, code in ((caught_up, 200), (clash, 409)):
        body = {"task": f"Task/{task_id}", "reason": "moved"}
        assert requests.post(f"{sidecar.url}{API}/cancel", json=body, timeout=30).status_code == code
    creates, updates = writes("cancel")
    assert seen["c"] <= creates and seen["u"] <= updates, seen
    assert {"ServiceRequest", "Task"} <= seen["u"] and "Provenance" in seen["c"]
    assert world.ours.read("ServiceRequest", request_id)["status"] == "revoked"
    seen["c"].clear()
    seen["u"].clear()
    body = {"task": f"Task/{clash}", "take": "remote"}
    assert requests.post(f"{sidecar.url}{API}/resolve", json=body, timeout=30).status_code == 200
    creates, updates = writes("resolve")
    assert seen["c"] <= creates and seen["u"] <= updates, seen
    assert world.ours.read("Task", clash)["status"] == "completed"


def _scopes(creates: frozenset[str], updates: frozenset[str], without: tuple[str, str] | None) -> str:
    """``user/`` scopes granting 'r' on Task, 'c' and 'u' as given, less ``without`` (type, letter)."""
    granted: dict[str, set[str]] = {"Task": {"r"}}
    for letter, types in (("c", creates), ("u", updates)):
        for rtype in types:
            granted.setdefault(rtype, set()).add(letter)
    if without is not None:
        granted[without[0]].discard(without[1])
    return " ".join(
        f"user/{rtype}.{''.join(p for p in 'cruds' if p in perms)}"
        for rtype, perms in sorted(granted.items())
        if perms
    )


def test_cancel_and_resolve_refuse_a_token_missing_any_scope_they_write_with(
    world: World, tmp_path: Path
) -> None:
    """One scope short of the table - any one - is 403 before anything is read or written, here or at
    the partner; exactly the table's scopes cancel."""
    from fhircare.exchange import send
    from fhircare.web.exchange_api import writes

    task_id, request_id = world.refer()
    send(world.exchange, task_id)
    partner_before = world.partner_requests()
    remote_before = world.remote_of(task_id)["meta"]["versionId"]
    ours_before = world.ours.read("Task", task_id)["meta"]["versionId"]
    auth = AttackedAuthServer(world.ours.base_url)
    auth.start()
    port = free_port()
    auth.register(Client("fhircare-test", [f"http://127.0.0.1:{port}/callback"]))
    settings = smart_settings(
        auth.iss, port, partners_file=_partners_with_hook(world, tmp_path), retries=1, backoff_factor=0.01
    )
    try:
        with Sidecar(settings, port) as smart:
            for route, body in (
                ("cancel", {"task": f"Task/{task_id}", "reason": "moved"}),
                ("resolve", {"task": f"Task/{task_id}", "take": "remote"}),
            ):
                creates, updates = writes(route)
                short = [(t, "c") for t in sorted(creates)] + [(t, "u") for t in sorted(updates)]
                for missing in short:
                    scope = f"launch openid fhirUser {_scopes(creates, updates, missing)}"
                    browser = login(smart, auth, scope=scope)
                    answer = browser.post(f"{smart.url}{API}/{route}", json=body, timeout=30)
                    assert answer.status_code == 403, (route, missing, answer.text)
                    assert f"'{missing[1]}' on" in answer.json()["issue"][0]["diagnostics"]
                    assert world.partner_requests() == partner_before, (route, missing)
            assert world.remote_of(task_id)["meta"]["versionId"] == remote_before
            assert world.ours.read("Task", task_id)["meta"]["versionId"] == ours_before
            creates, updates = writes("cancel")
            browser = login(smart, auth, scope=f"launch openid fhirUser {_scopes(creates, updates, None)}")
            body = {"task": f"Task/{task_id}", "reason": "moved"}
            done = browser.post(f"{smart.url}{API}/cancel", json=body, timeout=30)
            assert done.status_code == 200, done.text
    finally:
        auth.stop()
    assert world.remote_of(task_id)["status"] == "cancelled"
    assert world.ours.read("ServiceRequest", request_id)["status"] == "revoked"


def test_on_a_sent_referral_our_coordinator_sets_no_status_the_partner_owns(
    world: World, sidecar: Sidecar
) -> None:
    """The transition route (the task workflow: library, CLI, API and console alike): on a referral sent
    to a partner every status but entered-in-error is refused naming the rule, nothing written here or
    there; a cancel is sent to the exchange's route; a note is still the requester's to write."""
    from fhircare.exchange import send

    task_id, request_id = world.refer()
    send(world.exchange, task_id)
    url = f"{sidecar.url}/api/v1/tasks/{task_id}/transition"
    before = world.ours.read("Task", task_id)["meta"]["versionId"]
    for status in ("accepted", "rejected", "cancelled", "received", "ready"):
        answer = requests.post(url, json={"to": status, "actor": world.coordinator}, timeout=30)
        assert answer.status_code in (409, 422), (status, answer.text)
        issue = answer.json()["issue"][0]
        assert issue["expression"] == ["$.to"]
        expected = "exchange" if status == "cancelled" else "the partner sets this status"
        assert expected in answer.json()["issue"][0]["diagnostics"], issue
    assert world.ours.read("Task", task_id)["meta"]["versionId"] == before
    assert world.remote_of(task_id)["status"] == "requested"
    noted = requests.post(url, json={"note": "called the patient", "actor": world.coordinator}, timeout=30)
    assert noted.status_code == 201, noted.text
    work(world.theirs, world.remote_of(task_id)["id"], "accepted")  # the partner's status comes by sync
    sync_once(world.exchange, world.partner)
    assert world.ours.read("Task", task_id)["status"] == "accepted"
    wrong = requests.post(url, json={"to": "entered-in-error", "actor": world.coordinator}, timeout=30)
    assert wrong.status_code == 201, wrong.text
    assert world.ours.read("Task", task_id)["status"] == "entered-in-error"
    assert world.ours.read("ServiceRequest", request_id)["status"] == "active"


def test_the_sidecar_hook_answers_without_waiting_for_a_body_that_never_comes(
    world: World, sidecar: Sidecar
) -> None:
    """The hook reads nothing of a notification's body: announced and never sent, or a length of -1,
    the caller (unknown, refused or the partner itself) is answered at once."""
    import socket

    host, port = sidecar.url.split("//", 1)[1].split(":")
    cases = (
        ("nobody", "", "1000", 404),
        (world.partner, "Bearer wrong", "1000", 401),
        (world.partner, "Bearer wrong", "-1", 401),
        (world.partner, f"Bearer {HOOK_SECRET}", "1000", 200),
    )
    for name, authorization, length, code in cases:
        with socket.create_connection((host, int(port)), timeout=5) as held:
            named = f"Authorization: {authorization}\r\n" if authorization else ""
            held.sendall(
                f"POST {API}/hook/{name} HTTP/1.1\r\nHost: {host}:{port}\r\n{named}Content-Length: {length}\r\n\r\n".encode()
            )
            held.settimeout(10)
            answer = held.recv(64)
        assert answer.startswith(f"HTTP/1.1 {code}".encode()), (name, length, answer)
