"""``fhircare demo``: seed a synthetic caseload through the workflows, then play one coordinator's morning.

Everything is synthetic (names from small fixed lists, identifiers under the default namespace base's ``sid/demo``) and
deterministic for a given ``--seed``: the same seed makes the same payloads and request ids, so a
second run against the same server writes nothing new.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

from ..care.payer_decision import REVIEW_ACTION
from ..fhir import FhirClient
from ..namespaces import DEFAULT_NAMESPACES
from ..workflows import WorkflowResult, run
from .demo_directory import services_in

# synthetic data: under the documented default base whatever a deployment configures
DEMO_SYSTEM = DEFAULT_NAMESPACES.system("demo")
DEMO_MRN_SYSTEM = DEFAULT_NAMESPACES.system("demo-mrn")
US_CORE_PRACTITIONER_ROLE = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-practitionerrole"
GIVEN = ["Ana", "Luis", "Mei", "Omar", "Grace", "Ivan", "Fatima", "Noah", "Priya", "Samuel", "Lena", "Tomas"]
FAMILY = [
    "Silva",
    "Okafor",
    "Chen",
    "Haddad",
    "Moreau",
    "Novak",
    "Diallo",
    "Berg",
    "Rossi",
    "Tanaka",
    "Kowalski",
]
# (service, reason, directory category: the referral goes to one of its services, demo_directory.py)
SERVICES = [
    ("diabetes-education", "diabetes", "diabetes-education"),
    ("cardiology-referral", "heart-failure", "cardiology"),
    ("dietitian-referral", "diabetes", "nutrition"),
    ("social-worker-referral", "food-insecurity", "social-services"),
    ("mental-health-referral", "depression", "behavioral-health"),
]
ORGANIZATIONS = {
    "dm-program": "Diabetes Education Program",
    "cardiology": "Riverside Cardiology Clinic",
    "nutrition": "Community Nutrition Service",
    "social-services": "County Social Services",
    "behavioral-health": "Behavioral Health Partners",
    "rides": "Reliable Rides Transport",
    "payer-a": "Blue Lake Health Plan",
    "payer-b": "Evergreen Medicaid",
}
COORDINATORS = [("coord-1", "Rivera", "Jordan"), ("coord-2", "Nguyen", "Sam"), ("coord-3", "Patel", "Alex")]
# the organization the coordinators work for, and their role there (SDOHCC PractitionerRole: practitioner,
# organization, a code and a telecom)
CARE_HUB = ("care-hub", "Riverside Care Coordination Hub")
COORDINATOR_ROLE = {"system": "http://snomed.info/sct", "code": "768820003", "display": "Care coordinator"}
PRIORITIES = ["routine", "routine", "routine", "urgent", "asap", "stat"]


@dataclass
class DemoWorld:
    """References the seed created, for the morning and for tests."""

    coordinators: list[str] = field(default_factory=list)
    roles: dict[str, str] = field(default_factory=dict)  # coordinator -> their PractitionerRole
    hub: str = ""  # the Organization the coordinators act for
    organizations: dict[str, str] = field(default_factory=dict)
    services: dict[str, str] = field(default_factory=dict)  # directory key -> HealthcareService
    patients: list[str] = field(default_factory=list)
    plans: dict[str, str] = field(default_factory=dict)
    coordinator_of: dict[str, str] = field(default_factory=dict)
    referrals: dict[str, tuple[str, str]] = field(default_factory=dict)  # patient -> (ServiceRequest, Task)
    runs: int = 0
    requests: int = 0


def _ref(written: list[str], rtype: str) -> str:
    return next(r for r in written if r.startswith(f"{rtype}/"))


def reference_data(client: FhirClient) -> DemoWorld:
    """Coordinators and organizations, created conditionally in one transaction."""
    entries = []
    for key, family, given in COORDINATORS:
        entries.append(
            _conditional(
                {
                    "resourceType": "Practitioner",
                    "name": [{"family": family, "given": [given]}],
                    "active": True,
                },
                key,
            )
        )
    for key, name in {**ORGANIZATIONS, CARE_HUB[0]: CARE_HUB[1]}.items():
        entries.append(_conditional({"resourceType": "Organization", "name": name, "active": True}, key))
    refs = _create_all(client, entries)
    world = DemoWorld()
    world.coordinators = refs[: len(COORDINATORS)]
    world.organizations = dict(zip(ORGANIZATIONS, refs[len(COORDINATORS) : -1], strict=True))
    world.hub = refs[-1]
    world.roles = coordinator_roles(client, world)
    from ..settings import Settings
    from ..workflows import mappings_for
    from .demo_directory import seed_directory

    codes = mappings_for(Settings.from_env()).codes["services"]
    world.services = seed_directory(client, world.organizations, _conditional, _create_all, codes)
    return world


def coordinator_roles(client: FhirClient, world: DemoWorld) -> dict[str, str]:
    """Each coordinator's PractitionerRole at the hub, created conditionally in one transaction."""
    entries: list[dict[str, Any]] = []
    for (key, _, _), practitioner in zip(COORDINATORS, world.coordinators, strict=True):
        role = {
            "resourceType": "PractitionerRole",
            "meta": {"profile": [US_CORE_PRACTITIONER_ROLE]},
            "active": True,
            "practitioner": {"reference": practitioner},
            "organization": {"reference": world.hub},
            "code": [{"coding": [COORDINATOR_ROLE], "text": COORDINATOR_ROLE["display"]}],
            "telecom": [{"system": "phone", "value": f"555-0{100 + len(entries)}", "use": "work"}],
        }
        entries.append(_conditional(role, f"{key}-role"))
    return dict(zip(world.coordinators, _create_all(client, entries), strict=True))


def _create_all(client: FhirClient, entries: list[dict[str, Any]]) -> list[str]:
    """Conditional creates in transactions of at most 8 entries (a limit some servers set), in order."""
    refs: list[str] = []
    for start in range(0, len(entries), 8):
        bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries[start : start + 8]}
        answer = client.transaction(bundle)
        refs += [
            "/".join(e["response"]["location"].split("/_history")[0].split("/")[-2:]) for e in answer["entry"]
        ]
    return refs


def _conditional(resource: dict[str, Any], key: str) -> dict[str, Any]:
    resource["identifier"] = [{"system": DEMO_SYSTEM, "value": key}]
    return {
        "fullUrl": f"urn:uuid:{_uuid_of(key)}",
        "resource": resource,
        "request": {
            "method": "POST",
            "url": resource["resourceType"],
            # also finds what a demo seeded under urn:fhircare:demo before the namespace base existed
            "ifNoneExist": f"identifier={DEFAULT_NAMESPACES.token('demo', key)}",
        },
    }


def _uuid_of(key: str) -> str:
    import uuid

    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{DEMO_SYSTEM}/{key}"))


def _at(day: date, hour: int) -> datetime:
    return datetime.combine(day, time(hour, 0), tzinfo=timezone.utc)


class Seeder:
    """Seeds the caseload through the workflows themselves, one patient at a time."""

    def __init__(self, client: FhirClient, seed: int, today: date) -> None:
        self.client = client
        self.rng = random.Random(seed)  # noqa: S311 - synthetic demo data, not security
        self.seed = seed
        self.today = today

    def run(self, workflow: str, payload: dict[str, Any], days_ago: int = 0) -> list[str]:
        payload = {**payload, "on_behalf_of": self.world.hub}  # every coordinator acts for the hub
        result = run(workflow, payload, self.client, now=_at(self.today - timedelta(days=days_ago), 9))
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
        patient, plan = _ref(written, "Patient"), _ref(written, "CarePlan")
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
        request, task = _ref(written, "ServiceRequest"), _ref(written, "Task")
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
            self.prior_auth(i, patient, coordinator, request, _ref(coverage, "Coverage"), i % 2, age)
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
        claim = _ref(written, "Claim")
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
        entry = _conditional(response, f"{self.seed}-claimresponse-{i}")
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
            start = _at(self.today + timedelta(days=(5 + i % 9) if state == 2 else -(2 + i % 5)), 10 + i % 6)
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
                        "appointment": _ref(written, "Appointment"),
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
    start = _at(today + timedelta(days=3), 14).isoformat().replace("+00:00", "Z")
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
                    "appointment": _ref(booked.written, "Appointment"),
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
