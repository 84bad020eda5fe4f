"""Send exactly once: one remote Task per referral, whatever is lost or repeated."""

from __future__ import annotations

import json
import threading

from click.testing import CliRunner

from fhircare.cli.main import cli
from fhircare.exchange import send, sync_once
from fhircare.exchange.context import PartnerUnreachable
from tests.exchange.conftest import World


def test_send_creates_the_partners_task_with_absolute_references_back(world: World) -> None:
    task_id, request_id = world.refer()
    base = world.exchange.partners.base
    runner = CliRunner()
    env = {"FHIRCARE_PARTNERS": str(world.partners_file)}
    out = runner.invoke(cli, ["--base", world.ours.base_url, "exchange", "send", f"Task/{task_id}"], env=env)
    assert out.exit_code == 0, out.output
    answer = json.loads(out.stdout)
    remote = world.remote_of(task_id)
    assert answer == {
        "task": f"Task/{task_id}",
        "partner": world.partner,
        "remote": f"{world.proxy.base_url}/Task/{remote['id']}",
        "created": True,
    }
    assert remote["status"] == "requested"
    assert remote["focus"]["reference"] == f"{base}/ServiceRequest/{request_id}"
    assert remote["basedOn"] == [{"reference": f"{base}/ServiceRequest/{request_id}"}]
    assert remote["for"]["reference"] == f"{base}/{world.patient}"
    assert remote["requester"]["reference"] == f"{base}/{world.coordinator}"
    again = runner.invoke(
        cli, ["--base", world.ours.base_url, "exchange", "send", f"Task/{task_id}"], env=env
    )
    assert json.loads(again.stdout)["created"] is False
    assert len(world.remote_tasks(task_id)) == 1


def test_a_lost_answer_on_send_leaves_one_remote_task(world: World) -> None:
    task_id, _ = world.refer()
    world.proxy.inject("drop", method="POST", path=world.path("Task"), times=1)
    try:
        send(world.exchange, task_id)
    except PartnerUnreachable:
        send(world.exchange, task_id)  # the caller (sync) tries again
    assert ("POST", world.path("Task"), "drop") in world.proxy.log.seen
    assert len(world.remote_tasks(task_id)) == 1
    ours = world.ours.read("Task", task_id)
    assert any("exchange-link" in e["url"] for e in ours["extension"])


def test_two_senders_at_once_leave_one_remote_task_and_one_link(world: World) -> None:
    task_id, _ = world.refer()
    results: list[str] = []

    def one() -> None:
        results.append(send(world.exchange, task_id).remote)

    threads = [threading.Thread(target=one) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(world.remote_tasks(task_id)) == 1
    assert len(set(results)) == 1


def test_send_refuses_a_task_no_partner_owns(world: World) -> None:
    task_id, _ = world.refer()
    task = world.ours.read("Task", task_id)
    task["owner"] = {"reference": world.coordinator}
    world.ours.update(task)
    runner = CliRunner()
    env = {"FHIRCARE_PARTNERS": str(world.partners_file)}
    out = runner.invoke(cli, ["--base", world.ours.base_url, "exchange", "send", f"Task/{task_id}"], env=env)
    assert out.exit_code == 2
    assert "owned by no partner" in out.output
    assert world.remote_tasks(task_id) == []


def test_consent_required_sends_only_with_an_active_consent_naming_the_partner(world: World) -> None:
    from dataclasses import replace

    import pytest

    from fhircare.errors import PayloadError

    partners = world.exchange.partners
    strict = replace(partners.get(world.partner), disclosure="consent-required")
    world.exchange.partners = replace(partners, partners={world.partner: strict})
    task_id, _ = world.refer()
    with pytest.raises(PayloadError, match="consent"):
        send(world.exchange, task_id)
    assert world.remote_tasks(task_id) == []
    world.ours.create(
        {
            "resourceType": "Consent",
            "status": "active",
            "scope": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                        "code": "patient-privacy",
                    }
                ]
            },
            "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
            "patient": {"reference": world.patient},
            "provision": {
                "type": "permit",
                "actor": [{"role": {"text": "recipient"}, "reference": {"reference": world.org}}],
            },
        }
    )
    assert send(world.exchange, task_id).created is True


def test_a_create_the_partner_commits_late_still_leaves_one_remote_task(world: World) -> None:
    task_id, _ = world.refer()
    world.proxy.inject("delay", method="POST", path=world.path("Task"), times=1, delay=6.0)
    try:
        send(world.exchange, task_id)  # times out (read timeout 5 s) or succeeds on the client's retry
    except PartnerUnreachable:
        pass
    world.proxy.wait_idle(15)  # the delayed create reaches the server and commits
    sync_report = sync_once(world.exchange, world.partner)["partners"][world.partner]
    assert sync_report["reachable"] is True
    assert len(world.remote_tasks(task_id)) == 1
    assert any("exchange-link" in e["url"] for e in world.ours.read("Task", task_id)["extension"])
