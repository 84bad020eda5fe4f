"""Cancel goes to the partner first; conflicts are surfaced, never overwritten; a partner that is down
changes no referral."""

from __future__ import annotations

import json

from click.testing import CliRunner

from fhircare.cli.main import cli
from fhircare.exchange import cancel, referrals, send, sync_once, work
from tests.exchange.conftest import World
from tests.exchange.invariants import check_loop


def _sync(world: World) -> dict:
    return sync_once(world.exchange, world.partner)["partners"][world.partner]


def _cli(world: World, *args: str) -> object:
    env = {"FHIRCARE_PARTNERS": str(world.partners_file)}
    return CliRunner().invoke(cli, ["--base", world.ours.base_url, *args], env=env)


def test_a_cancel_taken_by_the_partner_cancels_both_and_revokes_the_request(world: World) -> None:
    task_id, request_id = world.refer()
    send(world.exchange, task_id)
    work(world.theirs, world.remote_of(task_id)["id"], "accepted")
    out = _cli(world, "exchange", "cancel", f"Task/{task_id}", "--reason", "patient moved away")
    assert out.exit_code == 0, out.output  # type: ignore[attr-defined]
    assert json.loads(out.stdout)["outcome"] == "cancelled"  # type: ignore[attr-defined]
    assert world.remote_of(task_id)["status"] == "cancelled"
    ours = world.ours.read("Task", task_id)
    assert (ours["status"], ours["statusReason"]["text"]) == ("cancelled", "patient moved away")
    assert world.ours.read("ServiceRequest", request_id)["status"] == "revoked"
    assert _sync(world)["conflicts"] == 0
    check_loop(world, task_id)  # the partner's 'accepted' reached ours before the cancel


def test_a_cancel_against_a_completed_remote_changes_nothing_and_is_a_conflict(world: World) -> None:
    task_id, request_id = world.refer()
    send(world.exchange, task_id)
    remote_id = world.remote_of(task_id)["id"]
    work(world.theirs, remote_id, "accepted")
    work(world.theirs, remote_id, "in-progress")
    work(world.theirs, remote_id, "completed", outcome="Delivered")
    before = world.ours.read("Task", task_id)["status"]
    out = _cli(world, "exchange", "cancel", f"Task/{task_id}", "--reason", "no longer needed")
    assert out.exit_code == 4  # type: ignore[attr-defined]
    assert world.remote_of(task_id)["status"] == "completed"
    assert world.ours.read("Task", task_id)["status"] == before
    assert world.ours.read("ServiceRequest", request_id)["status"] == "active"
    status = _cli(world, "exchange", "status", "--json", "--partner", world.partner)
    assert status.exit_code == 4  # type: ignore[attr-defined]
    row = next(r for r in json.loads(status.stdout) if r["task"] == f"Task/{task_id}")  # type: ignore[attr-defined]
    assert row["conflict"]["remote"]["status"] == "completed"
    assert row["conflict"]["local"]["status"] == before
    assert set(row) == {
        "task",
        "partner",
        "remote",
        "local_status",
        "remote_status",
        "synced_at",
        "conflict",
        "cancel_pending",
        "not_applied",
    }
    text = _cli(world, "exchange", "status", "--partner", world.partner)
    assert text.exit_code == 4 and "CONFLICT" in text.stdout  # type: ignore[attr-defined]
    from fhircare.views.worklist import worklist

    todo = [t for t in world.ours.search("Task", {"focus": f"Task/{task_id}"})]
    assert [(t["status"], t["owner"]["reference"]) for t in todo] == [("requested", world.coordinator)]
    assert any(
        row.as_dict()["task"] == f"Task/{todo[0]['id']}"
        for row in worklist(world.ours, owners=[world.coordinator])
    )
    resolved = _cli(world, "exchange", "resolve", f"Task/{task_id}", "--take", "remote")
    assert resolved.exit_code == 0, resolved.output  # type: ignore[attr-defined]
    ours = world.ours.read("Task", task_id)
    assert ours["status"] == "completed" and ours["output"][0]["valueReference"]["reference"].startswith(
        "Procedure/"
    )
    assert _cli(world, "exchange", "status", "--partner", world.partner).exit_code == 0  # type: ignore[attr-defined]
    assert world.ours.read("Task", todo[0]["id"])["status"] == "completed"
    assert _sync(world)["conflicts"] == 0


def test_an_unreachable_partner_leaves_the_cancel_pending_until_it_answers(world: World) -> None:
    task_id, request_id = world.refer()
    send(world.exchange, task_id)
    work(world.theirs, world.remote_of(task_id)["id"], "accepted")
    world.proxy.inject("503", times=1000)
    result = cancel(world.exchange, task_id, "duplicate referral")
    assert result.outcome == "pending"
    ours = world.ours.read("Task", task_id)
    assert ours["status"] == "requested"  # unchanged: a partner down is not a business event
    assert ours["businessStatus"]["coding"][0]["code"] == "cancel-pending"
    down = _sync(world)
    assert down["reachable"] is False
    assert world.ours.read("Task", task_id)["status"] == "requested"
    row = next(r for r in referrals(world.exchange, world.partner) if r["task"] == f"Task/{task_id}")
    assert row["cancel_pending"] is True
    world.proxy.clear()
    up = _sync(world)
    assert up["reachable"] is True
    assert world.remote_of(task_id)["status"] == "cancelled"
    ours = world.ours.read("Task", task_id)
    assert ours["status"] == "cancelled" and "businessStatus" not in ours
    assert world.ours.read("ServiceRequest", request_id)["status"] == "revoked"
    check_loop(world, task_id)


def test_a_partner_down_changes_no_referral_and_queued_sends_go_out_when_it_is_back(world: World) -> None:
    task_id, _ = world.refer()
    world.proxy.inject("503", times=1000)
    down = _sync(world)
    assert (down["reachable"], down["sent"]) == (False, 0)
    assert world.ours.read("Task", task_id)["status"] == "requested"
    world.proxy.clear()
    up = _sync(world)
    assert (up["reachable"], up["sent"]) == (True, 1)
    assert len(world.remote_tasks(task_id)) == 1


def test_no_update_on_either_server_goes_without_if_match(world: World, monkeypatch: object) -> None:
    from fhircare.fhir.transport import FhirTransport

    writes: list[tuple[str, str, bool]] = []
    real = FhirTransport.request

    def recording(self: FhirTransport, method: str, path_or_url: str, **kwargs: object) -> object:
        headers = dict(kwargs.get("headers") or {})  # type: ignore[call-overload]
        body = kwargs.get("json")
        if method == "PUT":
            writes.append((self.base_url, path_or_url, "If-Match" in headers))
        if isinstance(body, dict) and body.get("type") == "transaction":
            for entry in body.get("entry") or []:
                request = entry.get("request") or {}
                if request.get("method") == "PUT":
                    writes.append((self.base_url, request.get("url", ""), bool(request.get("ifMatch"))))
        return real(self, method, path_or_url, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(FhirTransport, "request", recording)  # type: ignore[attr-defined]
    first, request_id = world.refer(note="first")
    second, _ = world.refer(note="second")
    _sync(world)
    for task_id in (first, second):
        work(world.theirs, world.remote_of(task_id)["id"], "accepted")
    _sync(world)
    work(world.theirs, world.remote_of(first)["id"], "in-progress")
    work(world.theirs, world.remote_of(first)["id"], "completed", outcome="Done")
    _sync(world)
    cancel(world.exchange, second, "not needed")
    assert world.ours.read("ServiceRequest", request_id)["status"] == "completed"
    assert {base for base, _, _ in writes} == {
        world.ours.base_url,
        world.proxy.base_url,
        world.theirs.base_url,
    }
    assert [w for w in writes if not w[2]] == []
