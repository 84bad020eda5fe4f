"""One coordinator's morning on the demo caseload: what she does first, through the workflows."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from ..fhir import FhirClient
from ..workflows import WorkflowResult, run
from .world import (
    SERVICES,
    DemoWorld,
    at_hour,
    first_of_type,
)


@dataclass
class MorningStep:
    what: str
    written: list[str]


def _acting_for(world: DemoWorld) -> Callable[[str, dict[str, Any], FhirClient], WorkflowResult]:
    """``run`` for a coordinator acting on behalf of the hub (Provenance.agent.onBehalfOf)."""

    def run_as(workflow: str, payload: dict[str, Any], client: FhirClient) -> WorkflowResult:
        return run(workflow, {**payload, "on_behalf_of": world.hub}, client)

    return run_as


def play_morning(client: FhirClient, world: DemoWorld, today: date) -> list[MorningStep]:
    """One coordinator's morning: accept a referral, book it and the ride, check coverage, close a task."""
    coordinator = world.coordinators[0]
    run_as = _acting_for(world)
    mine = [p for p in world.patients if world.coordinator_of[p] == coordinator]
    waiting = next(p for i, p in enumerate(world.patients) if (i // 3) % 6 == 0 and p in mine)
    request, task = world.referrals[waiting]
    steps = [
        MorningStep(
            "Accept the waiting referral",
            run_as("task", {"task": task, "to": "accepted", "actor": coordinator}, client).written,
        )
    ]
    start = at_hour(today + timedelta(days=3), 14).isoformat().replace("+00:00", "Z")
    booked = run_as(
        "schedule",
        {
            "action": "book",
            "patient": waiting,
            "referral": request,
            "service": SERVICES[world.patients.index(waiting) % len(SERVICES)][0],
            "start": start,
            "minutes": 45,
            "practitioner": coordinator,
        },
        client,
    )
    steps.append(MorningStep("Book the appointment", booked.written))
    steps.append(
        MorningStep(
            "Arrange the ride",
            run_as(
                "transport",
                {
                    "patient": waiting,
                    "appointment": first_of_type(booked.written, "Appointment"),
                    "vendor": world.organizations["rides"],
                    "requester": world.roles[coordinator],
                    "pickup": "Home address on file",
                    "when": start,
                },
                client,
            ).written,
        )
    )
    steps.append(
        MorningStep(
            "Check coverage",
            run_as(
                "coverage-check",
                {
                    "patient": waiting,
                    "payor": world.organizations["payer-a"],
                    "subscriber_id": f"SUB-MORNING-{waiting.split('/')[1][:8]}",
                    "service": "diabetes-education",
                    "date": today.isoformat(),
                    "relationship": "self",
                    "coverage_type": "medicaid",
                    "plan": "Standard plan",
                    "period_start": today.replace(month=1, day=1).isoformat(),
                },
                client,
            ).written,
        )
    )
    from ..views.authorizations import authorizations, record_answers

    answered: list[str] = []

    def record(payload: dict[str, Any]) -> None:
        answered.extend(run_as("prior-auth", payload, client).written)

    record_answers(list(authorizations(client, requester=coordinator)), record, coordinator)
    if answered:
        steps.append(MorningStep("Record the payers' answers to prior authorizations", answered))

    from ..views.worklist import worklist

    rows = worklist(client, owners=[coordinator], today=today)
    if rows:
        written: list[str] = []
        for status in ("accepted", "in-progress", "completed"):
            written += run_as(
                "task", {"task": rows[0].task, "to": status, "actor": coordinator}, client
            ).written
        steps.append(MorningStep("Call back and complete the top task of the worklist", written))
    return steps
