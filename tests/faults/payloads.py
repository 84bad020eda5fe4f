"""For each write workflow: prerequisites written straight to the server, and a payload that uses them.

``reads`` is how many POSTs (batch reads) the workflow sends before its transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fhircare.fhir import FhirClient
from fhircare.workflows import run


@dataclass(frozen=True)
class Case:
    payload: dict[str, Any]
    reads: int


def _basics(client: FhirClient, uid: str) -> dict[str, str]:
    def make(resource: dict[str, Any]) -> str:
        created = client.create(resource)
        return f"{created['resourceType']}/{created['id']}"

    patient = make({"resourceType": "Patient", "name": [{"family": f"Fault{uid}"}]})
    return {
        "patient": patient,
        "coordinator": make({"resourceType": "Practitioner", "name": [{"family": "Coord"}]}),
        "org": make({"resourceType": "Organization", "name": "Program"}),
        "plan": make(
            {
                "resourceType": "CarePlan",
                "status": "active",
                "intent": "plan",
                "subject": {"reference": patient},
            }
        ),
    }


def _referral(b: dict[str, str], uid: str, **extra: Any) -> dict[str, Any]:
    return {
        "patient": b["patient"],
        "service": "diabetes-education",
        "performer": b["org"],
        "requester": b["coordinator"],
        "reason": "diabetes",
        "priority": "routine",
        "due": "2026-12-20",
        "note": f"fault case {uid}",
        **extra,
    }


def refer_case(client: FhirClient, uid: str) -> Case:
    return Case(_referral(_basics(client, uid), uid), reads=0)


def refer_into_plan_case(client: FhirClient, uid: str) -> Case:
    b = _basics(client, uid)
    return Case(_referral(b, uid, care_plan=b["plan"]), reads=1)


def task_case(client: FhirClient, uid: str) -> Case:
    b = _basics(client, uid)
    written = run("refer", _referral(b, uid), client).written
    return Case({"task": written[1], "to": "accepted", "actor": b["coordinator"]}, reads=1)


CASES: dict[str, Callable[[FhirClient, str], Case]] = {
    "refer": refer_case,
    "refer+care_plan": refer_into_plan_case,
    "task": task_case,
}
