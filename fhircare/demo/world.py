"""The demo's world: its synthetic data (``caseload.yaml``), the reference data it puts on a server
(organizations, coordinators and their roles) and small helpers the seeding shares."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timezone
from pathlib import Path
from typing import Any

import yaml

from ..fhir import FhirClient
from ..namespaces import DEFAULT_NAMESPACES

DATA = yaml.safe_load((Path(__file__).resolve().parent / "caseload.yaml").read_text(encoding="utf-8"))

# synthetic data: under the documented default base whatever a deployment configures
DEMO_SYSTEM = DEFAULT_NAMESPACES.system("demo")
DEMO_MRN_SYSTEM = DEFAULT_NAMESPACES.system("demo-mrn")
US_CORE_PRACTITIONER_ROLE = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-practitionerrole"
GIVEN: list[str] = list(DATA["given"])
FAMILY: list[str] = list(DATA["family"])
SERVICES: list[tuple[str, str, str]] = [tuple(s) for s in DATA["services"]]
ORGANIZATIONS: dict[str, str] = dict(DATA["organizations"])
ORGANIZATION_TYPES: dict[str, str] = dict(DATA.get("organization_types") or {})
ORGANIZATION_TYPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/organization-type"
COORDINATORS: list[tuple[str, str, str]] = [tuple(c) for c in DATA["coordinators"]]
CARE_HUB: tuple[str, str] = tuple(DATA["care_hub"])
COORDINATOR_ROLE: dict[str, str] = dict(DATA["coordinator_role"])
PRIORITIES: list[str] = list(DATA["priorities"])


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


def first_of_type(written: list[str], rtype: str) -> str:
    return next(r for r in written if r.startswith(f"{rtype}/"))


def reference_data(client: FhirClient) -> DemoWorld:
    """Coordinators and organizations, created conditionally in one transaction."""
    entries = []
    for key, family, given in COORDINATORS:
        entries.append(
            conditional(
                {
                    "resourceType": "Practitioner",
                    "name": [{"family": family, "given": [given]}],
                    "active": True,
                },
                key,
            )
        )
    for key, name in {**ORGANIZATIONS, CARE_HUB[0]: CARE_HUB[1]}.items():
        organization: dict[str, Any] = {"resourceType": "Organization", "name": name, "active": True}
        if key in ORGANIZATION_TYPES:
            code = {"system": ORGANIZATION_TYPE_SYSTEM, "code": ORGANIZATION_TYPES[key]}
            organization["type"] = [{"coding": [code]}]
        entries.append(conditional(organization, key))
    refs = create_all(client, entries)
    world = DemoWorld()
    world.coordinators = refs[: len(COORDINATORS)]
    world.organizations = dict(zip(ORGANIZATIONS, refs[len(COORDINATORS) : -1], strict=True))
    world.hub = refs[-1]
    world.roles = coordinator_roles(client, world)
    from ..settings import Settings
    from ..workflows import mappings_for
    from .directory import seed_directory

    codes = mappings_for(Settings.from_env()).codes["services"]
    world.services = seed_directory(client, world.organizations, conditional, create_all, codes)
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
        entries.append(conditional(role, f"{key}-role"))
    return dict(zip(world.coordinators, create_all(client, entries), strict=True))


def create_all(client: FhirClient, entries: list[dict[str, Any]]) -> list[str]:
    """Conditional creates in transactions of at most 8 entries (a limit some servers set), in order."""
    refs: list[str] = []
    for start in range(0, len(entries), 8):
        bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries[start : start + 8]}
        answer = client.transaction(bundle)
        refs += [
            "/".join(e["response"]["location"].split("/_history")[0].split("/")[-2:]) for e in answer["entry"]
        ]
    return refs


def conditional(resource: dict[str, Any], key: str) -> dict[str, Any]:
    resource["identifier"] = [{"system": DEMO_SYSTEM, "value": key}]
    return {
        "fullUrl": f"urn:uuid:{uuid_of(key)}",
        "resource": resource,
        "request": {
            "method": "POST",
            "url": resource["resourceType"],
            # also finds what a demo seeded under urn:fhircare:demo before the namespace base existed
            "ifNoneExist": f"identifier={DEFAULT_NAMESPACES.token('demo', key)}",
        },
    }


def uuid_of(key: str) -> str:
    import uuid

    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{DEMO_SYSTEM}/{key}"))


def at_hour(day: date, hour: int) -> datetime:
    return datetime.combine(day, time(hour, 0), tzinfo=timezone.utc)
