"""US Core provenance-1: a run's Provenance agent that is a Practitioner with no role acts on behalf of
our Organization (FHIRCARE_ORGANIZATION, or the partners file's ``self.organization``); the payload's
``on_behalf_of`` wins; nothing changes when no Organization is configured. On both servers."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import yaml

from fhircare.fhir import FhirClient
from fhircare.settings import Settings
from fhircare.workflows import run
from tests.support.clock import day


def _make(client: FhirClient, resource: dict[str, Any]) -> str:
    created = client.create(resource)
    return f"{created['resourceType']}/{created['id']}"


def _refer(client: FhirClient, settings: Settings, requester: str, **extra: str) -> dict[str, Any]:
    """A referral run; the Provenance it wrote, read back from the server."""
    uid = uuid.uuid4().hex[:8]
    payload = {
        "patient": _make(client, {"resourceType": "Patient", "name": [{"family": f"Prov{uid}"}]}),
        "service": "diabetes-education",
        "performer": _make(client, {"resourceType": "Organization", "name": f"Program {uid}"}),
        "requester": requester,
        "reason": "diabetes",
        "priority": "routine",
        "due": day(14),
        **extra,
    }
    written = run("refer", payload, client, settings=settings).written
    provenance = next(r for r in written if r.startswith("Provenance/"))
    return client.read("Provenance", provenance.split("/")[1])


def _settings(fhir_server: Any, **values: Any) -> Settings:
    return Settings.from_env({}, base_url=fhir_server.base_url, **values)


def test_a_practitioner_without_role_acts_for_our_organization(client: FhirClient, fhir_server: Any) -> None:
    ours = _make(client, {"resourceType": "Organization", "name": "Clinic"})
    practitioner = _make(client, {"resourceType": "Practitioner", "name": [{"family": "Coord"}]})
    provenance = _refer(client, _settings(fhir_server, organization=ours), practitioner)
    assert provenance["agent"][0]["who"] == {"reference": practitioner}
    assert provenance["agent"][0]["onBehalfOf"] == {"reference": ours}


def test_the_partners_file_names_our_organization(
    client: FhirClient, fhir_server: Any, tmp_path: Path
) -> None:
    ours = _make(client, {"resourceType": "Organization", "name": "Clinic"})
    other = _make(client, {"resourceType": "Organization", "name": "Not us"})
    practitioner = _make(client, {"resourceType": "Practitioner", "name": [{"family": "Coord"}]})
    path = tmp_path / "partners.yaml"
    path.write_text(yaml.safe_dump({"self": {"base": fhir_server.base_url, "organization": ours}}), "utf-8")
    provenance = _refer(client, _settings(fhir_server, partners_file=path, organization=other), practitioner)
    assert provenance["agent"][0]["onBehalfOf"] == {"reference": ours}


def test_the_payload_wins_and_nothing_changes_without_an_organization(
    client: FhirClient, fhir_server: Any
) -> None:
    ours = _make(client, {"resourceType": "Organization", "name": "Clinic"})
    hub = _make(client, {"resourceType": "Organization", "name": "Care hub"})
    practitioner = _make(client, {"resourceType": "Practitioner", "name": [{"family": "Coord"}]})
    named = _refer(client, _settings(fhir_server, organization=ours), practitioner, on_behalf_of=hub)
    assert named["agent"][0]["onBehalfOf"] == {"reference": hub}
    bare = _refer(client, _settings(fhir_server), practitioner)
    assert bare["agent"][0]["who"] == {"reference": practitioner}
    assert "onBehalfOf" not in bare["agent"][0]


def test_a_practitioner_role_acting_needs_no_on_behalf_of(client: FhirClient, fhir_server: Any) -> None:
    ours = _make(client, {"resourceType": "Organization", "name": "Clinic"})
    practitioner = _make(client, {"resourceType": "Practitioner", "name": [{"family": "Coord"}]})
    role = _make(
        client,
        {
            "resourceType": "PractitionerRole",
            "practitioner": {"reference": practitioner},
            "organization": {"reference": ours},
        },
    )
    provenance = _refer(client, _settings(fhir_server, organization=ours), role)
    assert provenance["agent"][0]["who"] == {"reference": role}
    assert "onBehalfOf" not in provenance["agent"][0]
