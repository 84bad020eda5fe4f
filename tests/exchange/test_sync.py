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


def test_outcomes_of_the_referral_outcome_types_are_copied_and_linked(world: World) -> None:
    """An Observation and a QuestionnaireResponse about our patient are referral outcomes like a
    Procedure: each copied once (its subject our Patient again) and linked from our completed Task."""
    task_id, request_id = world.refer()
    send(world.exchange, task_id)
    remote = world.remote_of(task_id)
    ours_patient = f"{world.exchange.partners.base}/{world.patient}"
    made = [
        world.theirs.create(
            {
                "resourceType": "Observation",
                "status": "final",
                "code": {"text": "food insecurity reassessed"},
                "subject": {"reference": ours_patient},
            }
        ),
        world.theirs.create(
            {
                "resourceType": "QuestionnaireResponse",
                "status": "completed",
                "subject": {"reference": ours_patient},
            }
        ),
    ]
    remote["status"] = "completed"
    remote["output"] = [
        {
            "type": {"text": "resulting-activity"},
            "valueReference": {"reference": f"{m['resourceType']}/{m['id']}"},
        }
        for m in made
    ]
    world.theirs.update(remote)
    assert _sync(world)["applied"] == 1
    ours = world.ours.read("Task", task_id)
    assert ours["status"] == "completed"
    copies = [world.ours.read_reference(o["valueReference"]["reference"]) for o in ours["output"]]
    assert [c["resourceType"] for c in copies] == ["Observation", "QuestionnaireResponse"]
    assert all(c["subject"]["reference"] == world.patient for c in copies)
    assert world.ours.read("ServiceRequest", request_id)["status"] == "completed"


def test_resolve_takes_the_version_shown_and_the_cycle_records_what_came_after(world: World) -> None:
    """resolve --take remote after the partner moved on: ours gets the version the conflict showed (its
    Provenance names that version); the later one reaches the cycle like any other (here: not a
    referral status, so not applied and shown)."""
    from fhircare.exchange import referrals, resolve

    task_id, _ = world.refer()
    send(world.exchange, task_id)
    remote_id = world.remote_of(task_id)["id"]
    for status in ("accepted", "in-progress"):
        work(world.theirs, remote_id, status)
    work(world.theirs, remote_id, "completed", outcome="done")
    ours = world.ours.read("Task", task_id)
    world.ours.update({**ours, "status": "cancelled"}, if_match=ours["meta"]["versionId"])
    assert _sync(world)["conflicts"] == 1
    row = next(r for r in referrals(world.exchange, world.partner) if r["task"] == f"Task/{task_id}")
    shown = row["conflict"]["remote"]["version"]
    moved = world.theirs.read("Task", remote_id)
    world.theirs.update({**moved, "status": "entered-in-error"})
    assert resolve(world.exchange, task_id, "remote")["status"] == "completed"
    ours = world.ours.read("Task", task_id)
    assert ours["status"] == "completed" and ours["output"][0]["valueReference"]["reference"].startswith(
        "Procedure/"
    )
    what = f"{world.proxy.base_url}/Task/{remote_id}/_history/{shown}"
    provenances = world.ours.search("Provenance", {"target": f"Task/{task_id}"})
    assert any(p["entity"][0]["what"]["reference"] == what for p in provenances)
    assert _sync(world)["conflicts"] == 0
    assert world.ours.read("Task", task_id)["status"] == "completed"
    row = next(r for r in referrals(world.exchange, world.partner) if r["task"] == f"Task/{task_id}")
    assert any("not a referral status" in why for why in row["not_applied"])


def test_a_partner_answer_over_the_limit_is_refused_while_streaming(world: World, monkeypatch) -> None:
    """An answer with no Content-Length (close-delimited) is counted as it streams: past the limit the
    cycle stops with one error, nothing applied; under it the same answer is read as usual."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from fhircare.exchange import Exchange, parse_partners
    from fhircare.exchange.context import PartnerClient
    from fhircare.exchange.sync import sync_partner

    entry = {"resource": {"resourceType": "Task", "id": "x", "status": "requested", "intent": "order"}}
    page = json.dumps({"resourceType": "Bundle", "type": "searchset", "entry": [entry], "x": "y" * 300_000})

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"  # no Content-Length: the body ends when the connection closes

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            self.send_response(200)
            self.send_header("Content-Type", "application/fhir+json")
            self.end_headers()
            self.wfile.write(page.encode())

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    import yaml

    document = yaml.safe_load(world.partners_file.read_text(encoding="utf-8"))
    document["partners"][world.partner]["base"] = f"http://127.0.0.1:{server.server_address[1]}/fhir"
    partners = parse_partners(document, str(world.partners_file))
    try:
        for limit, errors in ((100_000, 1), (1_000_000, 0)):
            monkeypatch.setattr(PartnerClient, "max_answer_bytes", limit)
            with Exchange(world.exchange.settings, partners, world.ours) as exchange:
                report = sync_partner(exchange, partners.get(world.partner))
            assert (report.errors, report.applied) == (errors, 0), limit
    finally:
        server.shutdown()
        server.server_close()


def test_a_copy_naming_a_patient_of_ours_under_the_partners_base_lands_in_no_record(world: World) -> None:
    """Servers file a reference by its Type/id tail whatever its base: a partner Procedure whose subject
    is ``<partner base>/Patient/<another of our patients' id>`` is copied with that reference made
    logical (identifier naming the URL), so it is in no record of ours; our Task still links it."""
    victim = world.ours.create({"resourceType": "Patient", "name": [{"family": "Elsewhere"}]})
    task_id, _ = world.refer()
    send(world.exchange, task_id)
    remote = world.remote_of(task_id)
    named = f"{world.exchange.remote_base(world.partner)}/Patient/{victim['id']}"
    planted = world.theirs.create(
        {
            "resourceType": "Procedure",
            "status": "completed",
            "code": {"text": "done"},
            "subject": {"reference": f"Patient/{victim['id']}", "display": "someone"},
        }
    )
    remote["status"] = "completed"
    remote["output"] = [
        {
            "type": {"text": "resulting-activity"},
            "valueReference": {"reference": f"Procedure/{planted['id']}"},
        }
    ]
    world.theirs.update(remote)
    _sync(world)
    ours = world.ours.read("Task", task_id)
    assert ours["status"] == "completed"
    copy = world.ours.read_reference(ours["output"][0]["valueReference"]["reference"])
    assert copy["subject"] == {
        "identifier": {"system": "urn:ietf:rfc:3986", "value": named},
        "display": "someone",
    }
    assert list(world.ours.search("Procedure", {"subject": f"Patient/{victim['id']}"})) == []
