"""Seeding the demo caseload through the workflows, like any user of fhircare."""

from __future__ import annotations

import multiprocessing
import random
import signal
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from typing import Any

from ..fhir import FhirClient
from ..fhir.pacing import Pacer
from ..workflows import run
from .directory import services_in
from .referral_moves import NO_SHOW, ReferralMoves, referral_state
from .world import (
    DEMO_MRN_SYSTEM,
    FAMILY,
    GIVEN,
    PRIORITIES,
    SERVICES,
    DemoWorld,
    at_hour,
    first_of_type,
    reference_data,
)

CHUNK = 20  # patients a seeding worker process seeds per task


@dataclass
class Draws:
    """What chance decides about one patient, drawn in one fixed order from the seeded generator."""

    given: str
    family: str
    birth: date
    gender: str
    relative_given: str
    relationship: str
    age: int
    priority: str
    due: int
    follow_up_due: int
    follow_up_priority: str


@dataclass
class Seeded:
    """What seeding some patients added to the world (merged in patient order)."""

    patients: list[str] = field(default_factory=list)
    plans: dict[str, str] = field(default_factory=dict)
    coordinator_of: dict[str, str] = field(default_factory=dict)
    referrals: dict[str, tuple[str, str]] = field(default_factory=dict)
    runs: int = 0
    requests: int = 0


class Seeder(ReferralMoves):
    """Seeds the caseload through the workflows themselves, patient after patient.

    Each patient's runs happen in order, in one process. With ``workers`` above 1, worker processes
    seed consecutive chunks of patients, each with its own client (``client_factory``, paced at its
    share of a client-side rate: :func:`share_pacing`); chance is
    drawn per patient in patient order whatever process seeds it, so a seed gives the same caseload
    (the same resources for each patient, the same request ids) with any number of workers.
    Workers pay off on a server that answers requests side by side; the embedded server spends most
    of the seeding CPU itself in this process (2,000 patients on a shared 2-core machine: 103 s with
    one process, 96 s with two workers).
    """

    def __init__(self, client: FhirClient, seed: int, today: date) -> None:
        self.client = client
        self.rng = random.Random(seed)  # noqa: S311 - synthetic demo data, not security
        self.drawn = 0  # patients whose draws the generator has given
        self.seed = seed
        self.today = today

    def run(self, workflow: str, payload: dict[str, Any], days_ago: int = 0) -> list[str]:
        payload = {**payload, "on_behalf_of": self.world.hub}  # every coordinator acts for the hub
        result = run(workflow, payload, self.client, now=at_hour(self.today - timedelta(days=days_ago), 9))
        self.world.runs += 1
        return result.written

    def seed_all(
        self,
        patients: int,
        progress: Callable[[int], None],
        workers: int = 1,
        client_factory: Callable[[], FhirClient] | None = None,
    ) -> DemoWorld:
        """Reference data, then ``patients`` patients; ``client_factory`` makes each worker's client
        (default: a plain client for the same base URL)."""
        start = self.client.request_count
        self.world = reference_data(self.client)
        if workers <= 1 or patients <= CHUNK:
            for i in range(patients):
                self.seed_patient(i)
                progress(1)
        else:
            factory = client_factory or _PlainClient(self.client.base_url)
            chunks = [(lo, min(lo + CHUNK, patients)) for lo in range(0, patients, CHUNK)]
            context = multiprocessing.get_context("spawn")  # this process runs threads (the server)
            processes = min(workers, len(chunks))
            with context.Pool(
                processes,
                initializer=_start_worker,
                initargs=(factory, self.seed, self.today, self.world, processes),
            ) as pool:
                for (lo, hi), seeded in zip(chunks, pool.imap(_seed_chunk, chunks), strict=True):
                    self.merge(seeded)
                    progress(hi - lo)
        self.world.requests += self.client.request_count - start
        return self.world

    def merge(self, seeded: Seeded) -> None:
        world = self.world
        world.patients += seeded.patients
        world.plans.update(seeded.plans)
        world.coordinator_of.update(seeded.coordinator_of)
        world.referrals.update(seeded.referrals)
        world.runs += seeded.runs
        world.requests += seeded.requests

    def draw(self, i: int) -> Draws:
        """Patient ``i``'s draws: the generator gives each patient's in turn (earlier ones skipped)."""
        if i < self.drawn:
            raise ValueError(f"patient {i} was drawn already")
        rng = self.rng
        while True:
            drawn = Draws(
                given=rng.choice(GIVEN),
                family=rng.choice(FAMILY),
                birth=date(1940 + rng.randrange(60), rng.randrange(1, 13), rng.randrange(1, 28)),
                gender=rng.choice(["female", "male"]),
                relative_given=rng.choice(GIVEN),
                relationship=rng.choice(["DAU", "SON", "SPS"]),
                age=rng.randrange(1, 30),
                priority=rng.choice(PRIORITIES),
                due=rng.randrange(-10, 21),
                follow_up_due=rng.randrange(-5, 8),
                follow_up_priority=rng.choice(PRIORITIES),
            )
            self.drawn += 1
            if self.drawn > i:
                return drawn

    def rid(self, i: int, step: str) -> str:
        return f"demo{self.seed}-p{i}-{step}"

    def seed_patient(self, i: int) -> None:
        world, today, d = self.world, self.today, self.draw(i)
        coordinator = world.coordinators[i % len(world.coordinators)]
        given, family, birth = d.given, d.family, d.birth
        written = self.run(
            "enroll",
            {
                "request_id": self.rid(i, "enroll"),
                "patient": {
                    "identifier": {"system": DEMO_MRN_SYSTEM, "value": f"MRN-{self.seed}-{i:04d}"},
                    "name": {"given": [given], "family": family},
                    "birthDate": birth.isoformat(),
                    "gender": d.gender,
                    "phone": f"555-02{i % 100:02d}",
                },
                "coordinator": coordinator,
                "family": [
                    {
                        "name": {"given": [d.relative_given], "family": family},
                        "relationship": d.relationship,
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
        state = referral_state(i)
        # a no-show needs room in the past: referred, accepted, booked ahead, then missed
        age = max(d.age, 4) if state == NO_SHOW else d.age
        written = self.run(
            "refer",
            {
                "request_id": self.rid(i, "refer"),
                "patient": patient,
                "service": service,
                "performer": performer,  # a service from the directory (Gravity SDOH: HealthcareService)
                "requester": world.roles[coordinator],  # SDOHCC: the referral's requester is a role
                "reason": reason,
                "priority": d.priority,
                # due no earlier than the day it was written (an overdue referral was on time once)
                "due": (today + timedelta(days=max(d.due, -age))).isoformat(),
                "care_plan": plan,
            },
            days_ago=age,
        )
        request, task = first_of_type(written, "ServiceRequest"), first_of_type(written, "Task")
        world.referrals[patient] = (request, task)
        self.move_referral(i, patient, task, coordinator, age)
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
                "due": (today + timedelta(days=max(d.follow_up_due, -min(age, 5)))).isoformat(),
                "note": "Call to check the referral happened",
                "priority": d.follow_up_priority,
            },
            days_ago=min(age, 5),
        )


class _PlainClient:
    """A picklable factory of plain clients for one base URL (workers' default)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    def __call__(self) -> FhirClient:
        return FhirClient(self.base_url)


_worker: Seeder | None = None  # the seeder of this worker process


def _start_worker(
    client_factory: Callable[[], FhirClient], seed: int, today: date, reference: DemoWorld, workers: int
) -> None:
    global _worker
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C is the parent's to handle: it ends the pool
    _worker = Seeder(share_pacing(client_factory(), workers), seed, today)
    _worker.world = reference


def share_pacing(client: FhirClient, workers: int) -> FhirClient:
    """``client`` paced at its share of the rate it was given (FHIRCARE_MAX_REQUESTS_PER_MINUTE):
    ``workers`` clients together send no more than that rate."""
    pacer = client.throttle.pacer
    if pacer.rate is not None and workers > 1:
        client.throttle.pacer = Pacer(pacer.rate * 60 / workers, clock=pacer.clock, sleep=pacer.sleep)
    return client


def _seed_chunk(chunk: tuple[int, int]) -> Seeded:
    """Seed patients ``lo`` to ``hi - 1`` in this worker (its chunks come in increasing order)."""
    seeder = _worker
    assert seeder is not None, "not a seeding worker"
    reference, requests = seeder.world, seeder.client.request_count
    seeder.world = replace(reference, patients=[], plans={}, coordinator_of={}, referrals={}, runs=0)
    try:
        for i in range(*chunk):
            seeder.seed_patient(i)
        world = seeder.world
        return Seeded(
            world.patients,
            world.plans,
            world.coordinator_of,
            world.referrals,
            world.runs,
            seeder.client.request_count - requests,
        )
    finally:
        seeder.world = reference
