"""The later life of a seeded patient's referral: its prior authorization (and the payer's answer) and
the states it moves through, for the demo :class:`~fhircare.demo.seed.Seeder`."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from ..care.payer_decision import REVIEW_ACTION
from ..fhir import FhirClient
from .world import (
    SERVICES,
    DemoWorld,
    at_hour,
    conditional,
    first_of_type,
)

#: referral states, by patient: 0 requested, 1 accepted, 2 booked, 3 no-show, 4 completed, 5 rejected
NO_SHOW = 3


def referral_state(i: int) -> int:
    """Every coordinator (``i % 3``) gets referrals in every state."""
    return (i // 3) % 6


class ReferralMoves:
    """The steps of a seeded referral after it was written; mixed into the Seeder, whose ``run`` and
    ``rid`` they use."""

    client: FhirClient
    seed: int
    today: date
    world: DemoWorld

    def run(self, workflow: str, payload: dict[str, Any], days_ago: int = 0) -> list[str]:
        raise NotImplementedError

    def rid(self, i: int, step: str) -> str:
        raise NotImplementedError

    def prior_auth(
        self, i: int, patient: str, coordinator: str, request: str, coverage: str, payer_a: int, age: int
    ) -> None:
        """A prior authorization for the referral; the payer has answered some (approved, denied)."""
        payer = self.world.organizations["payer-a" if payer_a else "payer-b"]
        written = self.run(
            "prior-auth",
            {
                "request_id": self.rid(i, "prior-auth"),
                "patient": patient,
                "coverage": coverage,
                "payer": payer,
                "provider": coordinator,
                "service_request": request,
                "service": SERVICES[i % len(SERVICES)][0],
                "due": (self.today + timedelta(days=7)).isoformat(),
            },
            days_ago=age,
        )
        answer = ("A1", "A3", None)[(i // 12) % 3]
        if answer is None:
            return  # still with the payer
        # the payer's own system writes its answer (conditional on an identifier: re-seeding is safe)
        claim = first_of_type(written, "Claim")
        response = {
            "resourceType": "ClaimResponse",
            "status": "active",
            "type": {
                "coding": [
                    {"system": "http://terminology.hl7.org/CodeSystem/claim-type", "code": "professional"}
                ]
            },
            "use": "preauthorization",
            "patient": {"reference": patient},
            "created": (self.today - timedelta(days=1)).isoformat(),
            "insurer": {"reference": payer},
            "request": {"reference": claim},
            "outcome": "complete",
            "disposition": "Certified in total" if answer == "A1" else "Not medically necessary",
            "extension": [{"url": REVIEW_ACTION, "valueCode": answer}],
            **({"preAuthRef": f"PA-{self.seed}-{i:04d}"} if answer == "A1" else {}),
        }
        entry = conditional(response, f"{self.seed}-claimresponse-{i}")
        self.client.create(entry["resource"], if_none_exist=entry["request"]["ifNoneExist"])

    def move_referral(self, i: int, patient: str, task: str, coordinator: str, age: int) -> None:
        """Referrals in every state: requested, accepted, booked, no-show, completed, rejected."""
        state = referral_state(i)
        if state == 0:
            return  # still waiting for the program to accept
        if state == 5:
            self.run(
                "task",
                {
                    "request_id": self.rid(i, "reject"),
                    "task": task,
                    "to": "rejected",
                    "reason": "Program full",
                },
            )
            return
        self.run(
            "task",
            {"request_id": self.rid(i, "accept"), "task": task, "to": "accepted"},
            days_ago=max(age - 1, 0),
        )
        if state in (2, NO_SHOW):
            request = self.world.referrals[patient][0]
            # booked the day after acceptance; a no-show's appointment fell between then and today
            days = (5 + i % 9) if state == 2 else -min(2 + i % 5, age - 2)
            start = at_hour(self.today + timedelta(days=days), 10 + i % 6)
            written = self.run(
                "schedule",
                {
                    "request_id": self.rid(i, "book"),
                    "action": "book",
                    "patient": patient,
                    "referral": request,
                    "service": SERVICES[i % len(SERVICES)][0],
                    "start": start.isoformat().replace("+00:00", "Z"),
                    "minutes": 30,
                    "practitioner": coordinator,
                },
                days_ago=max(age - 1, 0),
            )
            if state == NO_SHOW:
                self.run(
                    "schedule",
                    {
                        "request_id": self.rid(i, "noshow"),
                        "action": "noshow",
                        "appointment": first_of_type(written, "Appointment"),
                        "reason": "Patient did not attend",
                    },
                )
        if state == 4:
            self.run(
                "task",
                {"request_id": self.rid(i, "start"), "task": task, "to": "in-progress"},
                days_ago=max(age - 2, 0),
            )
            self.run("task", {"request_id": self.rid(i, "done"), "task": task, "to": "completed"})
