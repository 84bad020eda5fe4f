"""For each write workflow: prerequisites written straight to the server, and a payload that uses them.

``reads`` is how many POSTs (batch reads) the workflow sends before its transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fhircare.fhir import FhirClient
from fhircare.workflows import run
from tests.support.clock import at, day


@dataclass(frozen=True)
class Case:
    payload: dict[str, Any]
    reads: int


def make(client: FhirClient, resource: dict[str, Any]) -> str:
    created = client.create(resource)
    return f"{created['resourceType']}/{created['id']}"


def basics(client: FhirClient, uid: str) -> dict[str, str]:
    patient = make(client, {"resourceType": "Patient", "name": [{"family": f"Case{uid}"}]})
    return {
        "patient": patient,
        "coordinator": make(client, {"resourceType": "Practitioner", "name": [{"family": "Coord"}]}),
        "org": make(client, {"resourceType": "Organization", "name": "Program"}),
        "payer": make(client, {"resourceType": "Organization", "name": "Payer"}),
        "relative": make(
            client,
            {"resourceType": "RelatedPerson", "patient": {"reference": patient}, "name": [{"family": "Kin"}]},
        ),
        "plan": make(
            client,
            {
                "resourceType": "CarePlan",
                "status": "active",
                "intent": "plan",
                "subject": {"reference": patient},
            },
        ),
    }


def referral_payload(b: dict[str, str], uid: str, **extra: Any) -> dict[str, Any]:
    return {
        "patient": b["patient"],
        "service": "diabetes-education",
        "performer": b["org"],
        "requester": b["coordinator"],
        "reason": "diabetes",
        "priority": "routine",
        "due": day(22),
        "note": f"case {uid}",
        **extra,
    }


def _referral(client: FhirClient, b: dict[str, str], uid: str) -> list[str]:
    return run("refer", referral_payload(b, uid), client).written


def booked_appointment(client: FhirClient, b: dict[str, str], uid: str) -> str:
    """A booked Appointment for a fresh referral of the basics' patient."""
    request = _referral(client, b, uid)[0]
    written = run(
        "schedule",
        {
            "action": "book",
            "patient": b["patient"],
            "referral": request,
            "start": at(3, "10:00"),
            "minutes": 30,
            "practitioner": b["coordinator"],
        },
        client,
    ).written
    return written[0]


def refer_case(client: FhirClient, uid: str) -> Case:
    return Case(referral_payload(basics(client, uid), uid), reads=0)


def refer_into_plan_case(client: FhirClient, uid: str) -> Case:
    b = basics(client, uid)
    return Case(referral_payload(b, uid, care_plan=b["plan"]), reads=1)


def task_case(client: FhirClient, uid: str) -> Case:
    b = basics(client, uid)
    return Case({"task": _referral(client, b, uid)[1], "to": "accepted", "actor": b["coordinator"]}, reads=1)


def enroll_case(client: FhirClient, uid: str) -> Case:
    b = basics(client, uid)
    return Case(
        {
            "patient": {
                "identifier": {"system": "urn:test:mrn", "value": f"MRN-{uid}"},
                "name": {"given": ["Eva"], "family": f"Enrolled{uid}"},
                "birthDate": "1950-01-02",
                "gender": "female",
            },
            "coordinator": b["coordinator"],
            "family": [
                {"name": {"given": ["Jo"], "family": "Enrolled"}, "relationship": "DAU", "phone": "555-0110"}
            ],
            "plan_title": "Coordination plan",
        },
        reads=0,
    )


def assess_case(client: FhirClient, uid: str) -> Case:
    b = basics(client, uid)
    return Case(
        {
            "patient": b["patient"],
            "author": b["coordinator"],
            "care_plan": b["plan"],
            "answers": [{"question": "Do you live alone?", "answer": True}],
            "needs": [{"code": "food-insecurity"}],
            "goals": [{"description": "Enough food every day", "due": day(34)}],
        },
        reads=1,
    )


def care_plan_case(client: FhirClient, uid: str) -> Case:
    b = basics(client, uid)
    return Case(
        {
            "patient": b["patient"],
            "author": b["coordinator"],
            "title": f"Plan {uid}",
            "goals": [{"description": "Walk daily"}],
            "activities": [{"detail": {"description": "Walk 20 minutes"}}],
        },
        reads=0,
    )


def schedule_book_case(client: FhirClient, uid: str) -> Case:
    b = basics(client, uid)
    request = _referral(client, b, uid)[0]
    return Case(
        {
            "action": "book",
            "patient": b["patient"],
            "referral": request,
            "start": at(5, "09:00"),
            "minutes": 30,
            "practitioner": b["coordinator"],
            "family": [b["relative"]],
        },
        reads=0,
    )


def schedule_reschedule_case(client: FhirClient, uid: str) -> Case:
    b = basics(client, uid)
    return Case(
        {
            "action": "reschedule",
            "appointment": booked_appointment(client, b, uid),
            "start": at(7, "09:00"),
            "coordinator": b["coordinator"],
        },
        reads=1,
    )


def transport_case(client: FhirClient, uid: str) -> Case:
    b = basics(client, uid)
    return Case(
        {
            "patient": b["patient"],
            "appointment": booked_appointment(client, b, uid),
            "vendor": b["org"],
            "requester": b["coordinator"],
            "when": at(3, "09:15"),
            "pickup": "Home",
        },
        reads=0,
    )


def coverage_case(client: FhirClient, uid: str) -> Case:
    b = basics(client, uid)
    return Case(
        {
            "patient": b["patient"],
            "payor": b["payer"],
            "subscriber_id": f"SUB-{uid}",
            "service": "diabetes-education",
            "date": day(3),
            "relationship": "self",
            "requester": b["coordinator"],
        },
        reads=0,
    )


def active_coverage(client: FhirClient, b: dict[str, str]) -> str:
    """An active Coverage of ``b``'s patient by ``b``'s payer."""
    return make(
        client,
        {
            "resourceType": "Coverage",
            "status": "active",
            "beneficiary": {"reference": b["patient"]},
            "payor": [{"reference": b["payer"]}],
        },
    )


def prior_auth_case(client: FhirClient, uid: str) -> Case:
    b = basics(client, uid)
    coverage = active_coverage(client, b)
    request = _referral(client, b, uid)[0]
    return Case(
        {
            "patient": b["patient"],
            "coverage": coverage,
            "payer": b["payer"],
            "provider": b["coordinator"],
            "service_request": request,
            "service": "diabetes-education",
            "due": day(12),
        },
        reads=0,
    )


def follow_up_case(client: FhirClient, uid: str) -> Case:
    b = basics(client, uid)
    request = _referral(client, b, uid)[0]
    return Case(
        {
            "patient": b["patient"],
            "about": request,
            "owner": b["coordinator"],
            "due": day(6),
            "note": "Call back",
        },
        reads=0,
    )


def transition_case(client: FhirClient, uid: str) -> Case:
    b = basics(client, uid)
    return Case(
        {
            "patient": b["patient"],
            "coordinator": b["coordinator"],
            "discharge_date": day(3),
            "from_plan": b["plan"],
            "receiving_provider": b["org"],
            "services": [{"service": "home-health-referral", "performer": b["org"], "due": day(5)}],
        },
        reads=1,
    )


def educate_case(client: FhirClient, uid: str) -> Case:
    b = basics(client, uid)
    return Case(
        {
            "patient": b["patient"],
            "sender": b["coordinator"],
            "recipients": [b["patient"], b["relative"]],
            "topic": "diabetes",
            "content": "How to check blood sugar",
            "material": {
                "title": "Blood sugar leaflet",
                "url": "https://example.org/leaflet.pdf",
                "content_type": "application/pdf",
            },
        },
        reads=0,
    )


CASES: dict[str, Callable[[FhirClient, str], Case]] = {
    "assess": assess_case,
    "care-plan": care_plan_case,
    "coverage-check": coverage_case,
    "educate": educate_case,
    "enroll": enroll_case,
    "follow-up": follow_up_case,
    "prior-auth": prior_auth_case,
    "refer": refer_case,
    "refer+care_plan": refer_into_plan_case,
    "schedule": schedule_book_case,
    "schedule+reschedule": schedule_reschedule_case,
    "task": task_case,
    "transition": transition_case,
    "transport": transport_case,
}
