"""What fhircare writes, gathered for the conformance checks: every golden case's entries, and the
resources (with their Task status histories) of a demo run on the embedded server."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fhircare import clock
from tests.golden.harness import case_files, planned_entries

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO.parent / "shared" / "corpus"
R4_SCHEMA = CORPUS / "r4" / "schema" / "fhir.schema.json"

# what the demo writes through the workflows (ClaimResponses are the payers' own writes, not fhircare's;
# Practitioner, PractitionerRole and Organization are the demo's reference data)
DEMO_TYPES = (
    "Patient",
    "RelatedPerson",
    "CareTeam",
    "CarePlan",
    "ServiceRequest",
    "Task",
    "Appointment",
    "CommunicationRequest",
    "Coverage",
    "CoverageEligibilityRequest",
    "Claim",
    "Provenance",
    "Goal",
    "Condition",
    "QuestionnaireResponse",
    "Communication",
    "DocumentReference",
    "PractitionerRole",
)
REFERENCE_DATA = ("Practitioner", "Organization", "ClaimResponse")


@dataclass
class Written:
    """Resources to check, each with a label saying where it comes from, plus what they point at."""

    items: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    by_reference: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Task reference -> its statuses, oldest first (history on a server, found -> planned in a case:
    #: there the key is "<workflow>/<case>|Task/<id>", as every case names its Task t1)
    task_statuses: dict[str, list[str]] = field(default_factory=dict)
    #: keys of task_statuses whose last step is an undo of a completion (workflow undo-complete): the
    #: one way out of completed fhircare allows, for a short window, outside R4's state machine
    undone: set[str] = field(default_factory=set)

    def resolve(self, reference: str | None) -> dict[str, Any] | None:
        return self.by_reference.get(reference) if reference else None

    def type_of(self, reference: str | None) -> str | None:
        """The resource type a reference points at (urn:uuid references through this set)."""
        if not reference:
            return None
        if reference.startswith("urn:uuid:"):
            found = self.by_reference.get(reference)
            return str(found["resourceType"]) if found else None
        return reference.split("?", 1)[0].split("/", 1)[0]

    def of_type(self, resource_type: str) -> Iterator[tuple[str, dict[str, Any]]]:
        return ((label, r) for label, r in self.items if r.get("resourceType") == resource_type)


def golden_written() -> Written:
    """Every resource every golden case plans to write (Provenance included)."""
    written = Written()
    for path in case_files():
        case = json.loads(path.read_text())
        workflow = path.parent.name
        for reference, resource in (case.get("found") or {}).items():
            written.by_reference[reference] = resource
        for entry in _scoped(planned_entries(workflow, case), path.stem):
            resource = entry["resource"]
            label = f"golden {workflow}/{path.stem}: {resource['resourceType']}({entry['name']})"
            written.items.append((label, resource))
            written.by_reference[entry["fullUrl"]] = resource
            if entry["method"] == "PUT":
                before = (case.get("found") or {}).get(entry["url"])
                written.by_reference[entry["url"]] = resource
                if resource["resourceType"] == "Task" and before:
                    key = f"{workflow}/{path.stem}|{entry['url']}"
                    written.by_reference[key] = resource
                    written.task_statuses[key] = [before["status"], resource["status"]]
                    if workflow == "undo-complete":
                        written.undone.add(key)
    return written


def _scoped(entries: list[dict[str, Any]], case: str) -> list[dict[str, Any]]:
    """The entries with their urn:uuid names made unique to the case (every case numbers from 1)."""
    text = json.dumps(entries)
    for urn in set(re.findall(r"urn:uuid:[0-9a-f-]{36}", text)):
        text = text.replace(urn, f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, case + urn)}")
    scoped: list[dict[str, Any]] = json.loads(text)
    return scoped


def demo_written(client: Any, patients: int = 12, seed: int = 7) -> Written:
    """Seed a demo caseload and play the morning on ``client``'s server, then read back what is there."""
    from fhircare.demo import Seeder, play_morning

    today = clock.today()
    world = Seeder(client, seed, today).seed_all(patients, lambda _: None)
    play_morning(client, world, today)
    written = Written()
    for rtype in (*DEMO_TYPES, *REFERENCE_DATA):
        for resource in client.search(rtype, {"_count": "200"}):
            reference = f"{rtype}/{resource['id']}"
            written.by_reference[reference] = resource
            if rtype in DEMO_TYPES:
                written.items.append((f"demo: {reference}", resource))
    for reference in [ref for ref in written.by_reference if ref.startswith("Task/")]:
        history = client.request("GET", f"{reference}/_history").json()
        versions = sorted(
            (e["resource"] for e in history.get("entry") or [] if e.get("resource")),
            key=lambda r: int((r.get("meta") or {}).get("versionId") or 0),
        )
        written.task_statuses[reference] = [str(v.get("status")) for v in versions]
    return written
