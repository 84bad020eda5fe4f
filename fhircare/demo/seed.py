"""Seeding the demo caseload through the workflows, like any user of fhircare."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

from ..care.payer_decision import REVIEW_ACTION
from ..fhir import FhirClient
from ..workflows import run
from .directory import services_in
from .world import (
    DEMO_MRN_SYSTEM,
    FAMILY,
    GIVEN,
    PRIORITIES,
    SERVICES,
    DemoWorld,
    at_hour,
    conditional,
    first_of_type,
    reference_data,
)


class Seeder:
    """Seeds the caseload through the workflows themselves, one patient at a time."""

    def __init__(self, client: FhirClient, seed: int, today: date) -> None:
        self.client = client
        self.rng = random.Random(seed)  # noqa: S311 - synthetic demo data, not security
        self.seed = seed
        self.today = today

    def run(self, workflow: str, payload: dict[str, Any], days_ago: int = 0) -> list[str]:
        payload = {**payload, "on_behalf_of": self.world.hub}  # every coordinator acts for the hub
        result = run(workflow, payload, self.client, now=at_hour(self.today - timedelta(days=days_ago), 9))
        self.world.runs += 1
        return result.written

    def seed_all(self, patients: int, progress: Callable[[int], None]) -> DemoWorld:
        start = self.client.request_count
        self.world = reference_data(self.client)
        for i in range(patients):
            self.seed_patient(i)
            progress(1)
        self.world.requests = self.client.request_count - start
        return self.world

    def rid(self, i: int, step: str) -> str:
        return f"demo{self.seed}-p{i}-{step}"

    def seed_patient(self, i: int) -> None:
        rng, world, today = self.rng, self.world, self.today
        coordinator = world.coordinators[i % len(world.coordinators)]
        given, family = rng.choice(GIVEN), rng.choice(FAMILY)
        birth = date(1940 + rng.randrange(60), rng.randrange(1, 13), rng.randrange(1, 28))
        written = self.run(
            "enroll",
            {
                "request_id": self.rid(i, "enroll"),
                "patient": {
                    "identifier": {"system": DEMO_MRN_SYSTEM, "value": f"MRN-{self.seed}-{i:04d}"},
                    "name": {"given": [given], "family": family},
                    "birthDate": birth.isoformat(),
                    "gender": rng.choice(["female", "male"]),
                    "phone": f"555-02{i % 100:02d}",
                },
                "coordinator": coordinator,
                "family": [
                    {
                        "name": {"given": [rng.choice(GIVEN)], "family": family},
                        "relationship": rng.choice(["DAU", "SON", "SPS"]),
                        "phone": f"555-01{i % 100:02d}",
                    }
                ],
                "plan_title": f"Care coordination plan for {given} {family}",
            },
            days_ago=40,
        )
        patient, plan = first_of_type(written, "Patient"), first_of_type(written, "CarePlan")
        world.patients.append(patient)
        world.plans[patient] = plan
        world.coordinator_of[patient] = coordinator
        service, reason, category = SERVICES[i % len(SERVICES)]
        offered = services_in(category)
        performer = world.services[offered[(i // len(SERVICES)) % len(offered)]]
        age = rng.randrange(1, 30)
        written = self.run(
            "refer",
            {
                "request_id": self.rid(i, "refer"),
                "patient": patient,
                "service": service,
                "performer": performer,  # a service from the directory (Gravity SDOH: HealthcareService)
                "requester": world.roles[coordinator],  # SDOHCC: the referral's requester is a role
                "reason": reason,
                "priority": rng.choice(PRIORITIES),
                "due": (today + timedelta(days=rng.randrange(-10, 21))).isoformat(),
                "care_plan": plan,
            },
            days_ago=age,
        )
        request, task = first_of_type(written, "ServiceRequest"), first_of_type(written, "Task")
        world.referrals[patient] = (request, task)
        self.move_referral(i, task, coordinator, age)
        coverage = self.run(
            "coverage-check",
            {
                "request_id": self.rid(i, "coverage"),
                "patient": patient,
                "payor": world.organizations["payer-a" if i % 2 else "payer-b"],
                "subscriber_id": f"SUB-{self.seed}-{i:04d}",
                "service": service,
                "date": today.isoformat(),
                "relationship": "self",
                "coverage_type": "medicaid" if i % 2 else "private",
                "plan": "Standard plan",
                "period_start": (today - timedelta(days=400)).isoformat(),
                **({"period_end": (today - timedelta(days=30)).isoformat()} if i % 20 == 7 else {}),
            },
            days_ago=age,
        )
        if i % 4 == 1:  # every coordinator has some
            self.prior_auth(i, patient, coordinator, request, first_of_type(coverage, "Coverage"), i % 2, age)
        self.run(
            "follow-up",
            {
                "request_id": self.rid(i, "follow-up"),
                "patient": patient,
                "about": request,
                "owner": coordinator,
                "due": (today + timedelta(days=rng.randrange(-5, 8))).isoformat(),
                "note": "Call to check the referral happened",
                "priority": rng.choice(PRIORITIES),
            },
            days_ago=min(age, 5),
        )

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

    def move_referral(self, i: int, task: str, coordinator: str, age: int) -> None:
        """Referrals in every state: requested, accepted, booked, no-show, completed, rejected."""
        state = (i // 3) % 6  # every coordinator (i % 3) gets referrals in every state
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
        if state in (2, 3):
            patient = self.world.patients[-1]
            request = self.world.referrals[patient][0]
            start = at_hour(
                self.today + timedelta(days=(5 + i % 9) if state == 2 else -(2 + i % 5)), 10 + i % 6
            )
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
                    "records_past": state == 3,  # the no-shows were booked for days already gone
                },
                days_ago=max(age - 1, 0),
            )
            if state == 3:
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
