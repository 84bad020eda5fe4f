"""Golden cases on a real server: put what a case's payload names (and what it ``found``) on the
server, run the workflow with the case's clock, and compare what the server then holds with the
case's expected entries, entry by entry. Ids get a per-test suffix so cases never collide."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

from fhircare.fhir import FhirClient
from fhircare.settings import Settings
from fhircare.workflows import WorkflowResult, run
from fhircare.workflows.repeats import FINGERPRINT, payload_fingerprint
from tests.support.clock import day

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
REFERENCE = re.compile(r'(?<![\w/:.])([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(?=["/<])')
PLACEHOLDER_NAMES = {"Patient", "Practitioner", "RelatedPerson"}


def golden_cases(workflow: str) -> list[str]:
    return sorted(p.stem for p in (GOLDEN / workflow).glob("*.json"))


def load_case(workflow: str, name: str) -> dict[str, Any]:
    return dict(json.loads((GOLDEN / workflow / f"{name}.json").read_text()))


def _renamed(document: Any, suffix: str) -> Any:
    """Every literal ``Type/id`` reference (and the request id) made unique to this test."""
    text = REFERENCE.sub(lambda m: f"{m.group(1)}/{m.group(2)}-{suffix}", json.dumps(document))
    return json.loads(text)


# the least each type needs on a validating server, for resources a case names but does not show
MINIMAL: dict[str, dict[str, Any]] = {
    "ServiceRequest": {"status": "active", "intent": "order", "subject": {"reference": "{patient}"}},
    "Procedure": {"status": "completed", "subject": {"reference": "{patient}"}},
    "Encounter": {"status": "finished", "class": {"code": "AMB"}, "subject": {"reference": "{patient}"}},
    "Appointment": {
        "status": "booked",
        "participant": [{"actor": {"reference": "{patient}"}, "status": "accepted"}],
    },
    "Condition": {"subject": {"reference": "{patient}"}},
    "Coverage": {
        "status": "active",
        "beneficiary": {"reference": "{patient}"},
        "payor": [{"display": "Payer"}],
    },
    "Claim": {
        "status": "active",
        "type": {"text": "professional"},
        "use": "preauthorization",
        "patient": {"reference": "{patient}"},
        "created": day(-331),
        "provider": {"display": "Provider"},
        "priority": {"text": "normal"},
        "insurance": [{"sequence": 1, "focal": True, "coverage": {"display": "Coverage"}}],
    },
    "ClaimResponse": {
        "status": "active",
        "type": {"text": "professional"},
        "use": "preauthorization",
        "patient": {"reference": "{patient}"},
        "created": day(-331),
        "insurer": {"display": "Payer"},
        "outcome": "complete",
    },
    "CarePlan": {"status": "active", "intent": "plan", "subject": {"reference": "{patient}"}},
    "Task": {"status": "requested", "intent": "order"},
}


def _placeholder(reference: str, patient: str) -> dict[str, Any]:
    rtype, _, rid = reference.partition("/")
    template = json.loads(json.dumps(MINIMAL.get(rtype, {})).replace("{patient}", patient))
    resource: dict[str, Any] = {"resourceType": rtype, "id": rid, **template}
    if rtype in PLACEHOLDER_NAMES:
        resource["name"] = [{"family": f"Golden {rid}"}]
        if rtype == "RelatedPerson":
            resource["patient"] = {"reference": patient}
    elif rtype in ("Organization", "Location", "HealthcareService"):
        resource["name"] = f"Golden {rid}"
    return resource


def seed_and_run(
    client: FhirClient, workflow: str, case: dict[str, Any], suffix: str
) -> tuple[dict[str, Any], WorkflowResult, dict[str, str]]:
    """Seed the server for a case, run it; returns the renamed case, the result and, for each
    resource the case found, the version it has on this server."""
    case = _renamed({k: case[k] for k in ("payload", "found", "entries", "now") if k in case}, suffix)
    payload = case["payload"]
    case["request_id"] = str(payload.get("request_id", "golden"))
    payload["request_id"] = f"{case['request_id']}-{suffix}"
    found = case.get("found") or {}
    named = set(REFERENCE.findall(json.dumps(payload))) | set(
        REFERENCE.findall(json.dumps(list(found.values())))
    )
    patients = sorted(f"Patient/{rid}" for rtype, rid in named if rtype == "Patient")
    patient = patients[0] if patients else f"Patient/golden-{suffix}"
    order = sorted(named, key=lambda ref: (ref[0] not in ("Patient", "Organization", "Practitioner"), ref))
    if not patients:
        client.update(_placeholder(patient, patient))
    for rtype, rid in order:
        reference = f"{rtype}/{rid}"
        if reference not in found and rid.endswith(suffix):
            client.update(_placeholder(reference, patient))
    versions: dict[str, str] = {}
    for reference, resource in found.items():
        # a case shows what the workflow reads; a validating server wants the rest of the minimum too
        minimum = _placeholder(reference, patient)
        body = {
            **minimum,
            **{k: v for k, v in resource.items() if k != "meta"},
            "id": reference.split("/", 1)[1],
        }
        profiles = (resource.get("meta") or {}).get("profile")
        if profiles:  # what the case's resource declares, the server holds (versions are the server's)
            body["meta"] = {"profile": profiles}
        versions[reference] = client.update(body)["meta"]["versionId"]
    case["fingerprint"] = payload_fingerprint(workflow, payload)  # what the run's Provenance is tagged with
    result = run(workflow, payload, client, now=datetime.fromisoformat(case["now"]))
    return case, result, versions


def expected_on_server(
    case: dict[str, Any], result: WorkflowResult, versions: dict[str, str]
) -> list[dict[str, Any]]:
    """The case's expected resources as the server should hold them: urn:uuid references become what
    the server assigned, pre-image versions become this server's."""
    urls = {entry["fullUrl"]: written for entry, written in zip(case["entries"], result.written, strict=True)}
    text = json.dumps([entry["resource"] for entry in case["entries"]])
    for url, written in urls.items():
        text = text.replace(f'"{url}"', f'"{written}"')
    for reference, version in versions.items():
        text = re.sub(rf'"{re.escape(reference)}/_history/[^"]+"', f'"{reference}/_history/{version}"', text)
    text = text.replace(f"|{case['request_id']}/", f"|{result.request_id}/")  # ifNoneExist-like values
    text = text.replace(f'"{case["request_id"]}/', f'"{result.request_id}/')  # identifier values and tags
    expected = [{k: v for k, v in resource.items() if k != "id"} for resource in json.loads(text)]
    if case.get("fingerprint"):  # a golden case plans without one; the run tags its Provenance (repeats.py)
        tag = {"system": Settings().namespaces().base + FINGERPRINT, "code": case["fingerprint"]}
        for resource in expected:
            if resource["resourceType"] == "Provenance":
                meta = resource.setdefault("meta", {})
                meta["tag"] = [*meta.get("tag", []), tag]
    return expected


def stored(client: FhirClient, reference: str) -> dict[str, Any]:
    """A resource as the server holds it, without what a server adds of its own (id, meta but its
    profiles and tags)."""
    resource = client.read_reference(reference)
    meta = {k: v for k, v in (resource.get("meta") or {}).items() if k in ("profile", "tag") and v}
    out = {k: v for k, v in resource.items() if k not in ("id", "meta")}
    if meta:
        out["meta"] = meta
    return out
