"""Gap rules for referrals between organizations (tests/exchange/rules/gaps.yaml, an overlay)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from fhircare.exchange import send, sync_once, work
from fhircare.views.gaps import find_gaps
from tests.exchange.conftest import World
from tests.support.clock import date_at

RULES = Path(__file__).resolve().parent / "rules"


def _gaps(world: World, days_ahead: int = 0) -> set[tuple[str, str]]:
    settings = replace(world.exchange.settings, rules_dir=RULES)
    found = find_gaps(world.ours, patient=world.patient, today=date_at(days_ahead), settings=settings)
    return {(g.as_dict()["rule"], g.as_dict()["resource"]) for g in found}


def test_sent_but_not_acknowledged_then_rejected_and_not_re_referred(world: World) -> None:
    task_id, request_id = world.refer()
    send(world.exchange, task_id)
    assert ("exchange-not-acknowledged", f"Task/{task_id}") not in _gaps(world)
    assert ("exchange-not-acknowledged", f"Task/{task_id}") in _gaps(world, days_ahead=3)
    work(world.theirs, world.remote_of(task_id)["id"], "rejected", reason="at capacity")
    sync_once(world.exchange, world.partner)
    gaps = _gaps(world, days_ahead=3)
    assert ("exchange-not-acknowledged", f"Task/{task_id}") not in gaps
    assert ("exchange-rejected-not-re-referred", f"ServiceRequest/{request_id}") in gaps


def test_a_conflict_is_a_gap(world: World) -> None:
    task_id, _ = world.refer()
    send(world.exchange, task_id)
    ours = world.ours.read("Task", task_id)
    world.ours.update({**ours, "status": "cancelled"}, if_match=ours["meta"]["versionId"])
    work(world.theirs, world.remote_of(task_id)["id"], "accepted")
    sync_once(world.exchange, world.partner)
    assert ("exchange-conflict", f"Task/{task_id}") in _gaps(world)
