"""fhircare as a coordination platform: an incoming referral forwarded to the next partner, its progress
mirrored back onto the incoming Task, a cancel from upstream carried down the chain."""

from __future__ import annotations

import json
from typing import Any

from click.testing import CliRunner

from fhircare.cli.main import cli
from fhircare.exchange import sync_once, work
from tests.exchange.conftest import World

REQUESTER = "https://ehr.example.org/fhir"


def _incoming(world: World, note: str) -> str:
    """A referral Task a requester posted to us (the platform), references absolute to its server."""
    task: dict[str, Any] = {
        "resourceType": "Task",
        "identifier": [{"system": "urn:ietf:rfc:3986", "value": f"{REQUESTER}/Task/{note}"}],
        "status": "requested",
        "intent": "order",
        "description": "Food pantry referral",
        "focus": {"reference": f"{REQUESTER}/ServiceRequest/{note}"},
        "for": {"reference": f"{REQUESTER}/Patient/p1"},
        "requester": {"reference": f"{REQUESTER}/Organization/ehr"},
        "owner": {"reference": world.exchange.partners.organization},
    }
    return str(world.ours.create(task)["id"])


def _forward(world: World, incoming: str) -> dict[str, Any]:
    env = {"FHIRCARE_PARTNERS": str(world.partners_file)}
    args = ["--base", world.ours.base_url, "exchange", "forward", f"Task/{incoming}", "--to", world.partner]
    out = CliRunner().invoke(cli, args, env=env)
    assert out.exit_code == 0, out.output
    return dict(json.loads(out.stdout))


def test_a_forwarded_referral_mirrors_the_partners_progress_onto_the_incoming_task(world: World) -> None:
    incoming = _incoming(world, "fwd1")
    first = _forward(world, incoming)
    assert _forward(world, incoming) == first  # exactly once
    request = world.ours.read_reference(first["service_request"])
    assert request["intent"] == "filler-order"
    assert request["basedOn"] == [{"reference": f"{REQUESTER}/ServiceRequest/fwd1"}]
    ours = world.ours.read_reference(first["task"])
    assert ours["partOf"] == [{"reference": f"Task/{incoming}"}]
    remote_id = world.remote_of(first["task"].split("/")[1])["id"]
    work(world.theirs, remote_id, "accepted")
    work(world.theirs, remote_id, "in-progress")
    work(world.theirs, remote_id, "completed", outcome="Pantry visit")
    sync_once(world.exchange, world.partner)
    upstream = world.ours.read("Task", incoming)
    assert upstream["status"] == "completed"
    assert upstream["output"][0]["valueReference"]["reference"].startswith("Procedure/")
    assert world.ours.read_reference(first["service_request"])["status"] == "completed"


def test_a_cancel_upstream_goes_down_the_chain(world: World) -> None:
    incoming = _incoming(world, "fwd2")
    first = _forward(world, incoming)
    remote_id = world.remote_of(first["task"].split("/")[1])["id"]
    work(world.theirs, remote_id, "accepted")
    sync_once(world.exchange, world.partner)
    assert world.ours.read("Task", incoming)["status"] == "accepted"
    upstream = world.ours.read("Task", incoming)
    upstream["status"] = "cancelled"
    upstream["statusReason"] = {"text": "patient declined"}
    world.ours.update(upstream, if_match=upstream["meta"]["versionId"])  # the requester cancels it
    sync_once(world.exchange, world.partner)
    remote = world.theirs.read("Task", remote_id)
    assert (remote["status"], remote["statusReason"]["text"]) == ("cancelled", "patient declined")
    assert world.ours.read_reference(first["task"])["status"] == "cancelled"
    assert world.ours.read_reference(first["service_request"])["status"] == "revoked"
