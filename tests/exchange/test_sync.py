"""Sync: the partner's changes replayed onto ours, in order, once, with a Provenance each."""

from __future__ import annotations

import json

from click.testing import CliRunner

from fhircare.cli.main import cli
from fhircare.exchange import send, sync_once, work
from tests.exchange.conftest import World
from tests.exchange.invariants import check_loop, statuses


def _sync(world: World) -> dict:
    return sync_once(world.exchange, world.partner)["partners"][world.partner]


def test_a_referral_accepted_worked_and_completed_there_is_completed_here(world: World) -> None:
    task_id, request_id = world.refer()
    first = _sync(world)  # sends the unsent referral
    assert (first["sent"], first["applied"], first["reachable"]) == (1, 0, True)
    remote = world.remote_of(task_id)
    work(world.theirs, remote["id"], "accepted")
    work(world.theirs, remote["id"], "in-progress")
    work(world.theirs, remote["id"], "completed", outcome="Enrolled in the diabetes program")
    runner = CliRunner()
    env = {"FHIRCARE_PARTNERS": str(world.partners_file)}
    out = runner.invoke(
        cli, ["--base", world.ours.base_url, "sync", "--once", "--partner", world.partner], env=env
    )
    assert out.exit_code == 0, out.output
    report = json.loads(out.stdout)["partners"][world.partner]
    assert report["applied"] == 3 and report["conflicts"] == 0 and report["reachable"] is True
    latest = world.remote_of(task_id)
    assert report["cursor"] == latest["meta"]["lastUpdated"]  # the partner's timestamp, as it wrote it
    ours = world.ours.read("Task", task_id)
    assert ours["status"] == "completed"
    copy_ref = ours["output"][0]["valueReference"]["reference"]
    assert copy_ref.startswith("Procedure/")
    procedure = world.ours.read_reference(copy_ref)
    assert procedure["code"]["text"] == "Enrolled in the diabetes program"
    assert procedure["subject"]["reference"] == world.patient  # our Patient again, relative
    assert world.ours.read("ServiceRequest", request_id)["status"] == "completed"
    assert statuses(world.ours, task_id) == ["requested", "accepted", "in-progress", "completed"]
    provenances = list(world.ours.search("Provenance", {"target": f"Task/{task_id}"}))
    remote_url = f"{world.proxy.base_url}/Task/{latest['id']}/_history/"
    mirrored = [p for p in provenances if p["entity"][0]["what"]["reference"].startswith(remote_url)]
    assert len(mirrored) == 3
    assert all(p["agent"][0]["who"]["reference"] == world.org for p in mirrored)
    check_loop(world, task_id)
    again = _sync(world)
    assert (again["sent"], again["applied"]) == (0, 0)
    check_loop(world, task_id)


def test_an_idle_cycle_costs_one_search_on_the_partner(world: World) -> None:
    for n in range(3):
        world.refer(note=f"referral {n}")
    _sync(world)
    _sync(world)
    world.proxy.clear()
    report = _sync(world)
    assert report["applied"] == 0
    assert world.partner_requests() == 1


def test_rejected_keeps_the_service_request_active(world: World) -> None:
    task_id, request_id = world.refer()
    send(world.exchange, task_id)
    work(world.theirs, world.remote_of(task_id)["id"], "rejected", reason="at capacity")
    assert _sync(world)["applied"] == 1
    ours = world.ours.read("Task", task_id)
    assert ours["status"] == "rejected" and ours["statusReason"]["text"] == "at capacity"
    assert world.ours.read("ServiceRequest", request_id)["status"] == "active"


def test_a_requester_owned_field_changed_by_the_partner_is_not_applied(world: World) -> None:
    task_id, _ = world.refer()
    send(world.exchange, task_id)
    remote = world.remote_of(task_id)
    remote["status"] = "accepted"
    remote["description"] = "something else entirely"
    world.theirs.update(remote)
    _sync(world)
    ours = world.ours.read("Task", task_id)
    assert ours["status"] == "accepted"
    assert ours["description"] != "something else entirely"
    rows = [
        r
        for r in __import__("fhircare.exchange", fromlist=["referrals"]).referrals(world.exchange)
        if r["task"] == f"Task/{task_id}"
    ]
    assert any("description is requester-owned" in why for why in rows[0]["not_applied"])


def test_a_status_outside_the_referral_value_set_is_not_applied(world: World) -> None:
    task_id, _ = world.refer()
    send(world.exchange, task_id)
    remote = world.remote_of(task_id)
    remote["status"] = "received"
    world.theirs.update(remote)
    _sync(world)
    assert world.ours.read("Task", task_id)["status"] == "requested"


def test_a_terminal_task_here_is_never_moved_by_the_partner(world: World) -> None:
    task_id, _ = world.refer()
    send(world.exchange, task_id)
    ours = world.ours.read("Task", task_id)
    ours["status"] = "cancelled"  # cancelled here, behind the exchange's back
    world.ours.update(ours, if_match=ours["meta"]["versionId"])
    work(world.theirs, world.remote_of(task_id)["id"], "accepted")
    report = _sync(world)
    assert report["conflicts"] == 1
    assert world.ours.read("Task", task_id)["status"] == "cancelled"
    assert world.remote_of(task_id)["status"] == "accepted"


def test_one_cycle_sends_every_unsent_referral_even_while_linking_reorders_the_search(world: World) -> None:
    entries = [
        {
            "resource": {
                "resourceType": "Task",
                "status": "requested",
                "intent": "order",
                "description": f"bulk {n}",
                "for": {"reference": world.patient},
                "owner": {"reference": world.org},
            },
            "request": {"method": "POST", "url": "Task"},
        }
        for n in range(130)
    ]
    world.ours.transaction({"resourceType": "Bundle", "type": "transaction", "entry": entries})
    report = _sync(world)
    assert report["sent"] == 130
    system = "urn:ietf:rfc:3986"
    remote = [
        t
        for t in world.theirs.search(
            "Task",
            {
                "_tag": f"{world.exchange.namespace_base.rstrip('/')}/CodeSystem/exchange-source|{world.exchange.partners.absolute(world.exchange.partners.organization)}"
            },
        )
    ]
    assert len({next(i["value"] for i in t["identifier"] if i["system"] == system) for t in remote}) == 130
    assert _sync(world)["sent"] == 0


def test_a_partner_answer_that_is_not_fhir_changes_nothing_and_is_shown(world: World) -> None:
    import threading
    from dataclasses import replace
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from fhircare.exchange import partner_states
    from fhircare.exchange.status import render

    class Html(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            return

        def do_GET(self) -> None:
            body = b"<html><body>maintenance</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Html)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        task_id, _ = world.refer()
        send(world.exchange, task_id)
        partners = world.exchange.partners
        broken = replace(
            partners.get(world.partner), base=f"http://127.0.0.1:{server.server_address[1]}/fhir"
        )
        world.exchange.close()
        world.exchange.partners = replace(partners, partners={world.partner: broken})
        report = _sync(world)
        assert report["applied"] == 0 and report["reachable"] is True
        assert world.ours.read("Task", task_id)["status"] == "requested"
        states = partner_states(world.exchange)
        assert states[world.partner]["last_error"] == "PartnerAnswerError"
        assert "last answer not applied" in render([], states)
    finally:
        server.shutdown()
        server.server_close()


def test_our_own_later_edit_is_not_taken_for_the_partners(world: World) -> None:
    from fhircare.exchange import referrals

    task_id, _ = world.refer()
    send(world.exchange, task_id)
    ours = world.ours.read("Task", task_id)
    world.ours.update(
        {**ours, "note": [{"text": "call before visiting"}]}, if_match=ours["meta"]["versionId"]
    )
    work(world.theirs, world.remote_of(task_id)["id"], "accepted")
    assert _sync(world)["applied"] == 1
    row = next(r for r in referrals(world.exchange, world.partner) if r["task"] == f"Task/{task_id}")
    assert row["not_applied"] == [] and row["local_status"] == "accepted"


def test_our_later_edit_is_put_on_the_partners_task_once(world: World) -> None:
    task_id, _ = world.refer()
    send(world.exchange, task_id)
    work(world.theirs, world.remote_of(task_id)["id"], "accepted")
    ours = world.ours.read("Task", task_id)
    world.ours.update({**ours, "priority": "urgent"}, if_match=ours["meta"]["versionId"])
    _sync(world)
    remote = world.remote_of(task_id)
    assert (remote["priority"], remote["status"]) == ("urgent", "accepted")
    assert world.ours.read("Task", task_id)["status"] == "accepted"  # caught up before the push
    world.proxy.clear()
    _sync(world)
    assert not [s for s in world.proxy.log.seen if s[0] == "PUT"]
    check_loop(world, task_id)


def test_our_edit_against_a_final_remote_task_is_a_conflict(world: World) -> None:
    task_id, _ = world.refer()
    send(world.exchange, task_id)
    remote_id = world.remote_of(task_id)["id"]
    work(world.theirs, remote_id, "rejected", reason="at capacity")
    ours = world.ours.read("Task", task_id)
    world.ours.update({**ours, "priority": "urgent"}, if_match=ours["meta"]["versionId"])
    report = _sync(world)
    assert report["conflicts"] >= 1
    remote = world.remote_of(task_id)
    assert remote["status"] == "rejected" and remote.get("priority") != "urgent"


def test_an_output_pointing_nowhere_is_not_applied(world: World) -> None:
    from fhircare.exchange import referrals

    task_id, request_id = world.refer()
    send(world.exchange, task_id)
    remote = world.remote_of(task_id)
    remote["status"] = "completed"
    remote["output"] = [
        {"type": {"text": "resulting-activity"}, "valueReference": {"reference": "Procedure/nowhere"}}
    ]
    world.theirs.update(remote)
    _sync(world)
    assert world.ours.read("Task", task_id)["status"] == "requested"
    assert world.ours.read("ServiceRequest", request_id)["status"] == "active"
    row = next(r for r in referrals(world.exchange, world.partner) if r["task"] == f"Task/{task_id}")
    assert any("output points nowhere" in why for why in row["not_applied"])
