"""The directory of services (HealthcareService with its Organization and Locations): the view, the
``fhircare directory`` command and ``GET /api/v1/directory``, on the demo's directory, on both servers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from fhircare.demo.directory import SERVICES, seed_directory
from fhircare.demo.world import conditional as _conditional
from fhircare.demo.world import create_all as _create_all
from fhircare.settings import Settings
from fhircare.views.directory import directory
from fhircare.workflows import mappings_for
from tests.integration.sidecar_harness import Sidecar

FHIRCARE = str(Path(sys.executable).with_name("fhircare"))


@pytest.fixture()
def services(client) -> dict[str, str]:
    """The demo's directory (created conditionally: seeding it again writes nothing)."""
    codes = mappings_for(Settings()).codes["services"]
    organizations = {
        key: f"Organization/{org['id']}"
        for key, name in (
            ("rides", "Reliable Rides Transport"),
            ("dm-program", "Diabetes Education Program"),
            ("nutrition", "Community Nutrition Service"),
            ("cardiology", "Riverside Cardiology Clinic"),
            ("social-services", "County Social Services"),
            ("behavioral-health", "Behavioral Health Partners"),
        )
        for org in [client.create({"resourceType": "Organization", "name": name})]
    }
    return seed_directory(client, organizations, _conditional, _create_all, codes)


def test_the_directory_finds_services_by_category_place_and_name_in_few_requests(client, services):
    assert len(services) == len(SERVICES) == 30
    client.include_works("HealthcareService", "HealthcareService:organization")  # learned once per server
    before = client.request_count
    near = directory(client, category="food-pantry", near="02139")
    assert client.request_count - before <= 3  # the locations, the services (+ one batch without _include)
    assert [e.name for e in near] == ["Harbor Food Pantry, Central Square"]
    entry = near[0]
    assert entry.service == services["pantry-central"]
    assert entry.organization_name == "Harbor Community Food Network"
    assert entry.where == "Central Square site, 650 Massachusetts Ave, Cambridge 02139"
    assert entry.phone == "555-0301" and entry.category == "Food pantry"
    assert "food pantry" in entry.type.lower()

    in_medford = directory(client, category="food-pantry", near="Medford")
    assert [e.name for e in in_medford] == ["Eastside Mobile Market", "Mystic Valley Home-Delivered Meals"]
    assert "Malden Center site" in in_medford[0].where and "Medford Square site" in in_medford[0].where
    rides = directory(client, category="transportation")
    assert {e.service for e in rides} >= {services["rides-sedan"], services["citylink-boston"]}
    assert all(e.category == "Transportation" for e in rides)
    assert [e.name for e in directory(client, name="Harbor")] == [
        "Harbor Food Pantry, Central Square",
        "Harbor Food Pantry, Fields Corner",
    ]
    assert directory(client, near="99999") == []


def test_the_directory_command_and_the_api_answer_the_same(fhir_server, client, services):
    answer = subprocess.run(
        [FHIRCARE, "directory", "--category", "food-pantry", "--near", "Medford", "--format", "json"]
        + ["--base", fhir_server.base_url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert answer.returncode == 0, answer.stderr
    printed = json.loads(answer.stdout)
    assert [row["service"] for row in printed] == [services["pantry-mobile"], services["meals-mystic"]]
    table = subprocess.run(
        [FHIRCARE, "--base", fhir_server.base_url, "directory", "--category", "diabetes-education"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert table.returncode == 0 and "Diabetes Education in Spanish" in table.stdout
    with Sidecar(Settings(base_url=fhir_server.base_url)) as dev:
        api = requests.get(
            f"{dev.url}/api/v1/directory", params={"category": "food-pantry", "near": "Medford"}, timeout=30
        )
        assert api.status_code == 200 and api.json() == printed
        document = requests.get(f"{dev.url}/api/v1/openapi.json", timeout=30).json()
        assert "/api/v1/directory" in document["paths"] and "/api/v1/lookup" in document["paths"]
        choices = requests.get(
            f"{dev.url}/api/v1/lookup", params={"type": "HealthcareService", "name": "Harbor"}, timeout=30
        ).json()
        assert [c["reference"] for c in choices] == [services["pantry-central"], services["pantry-fields"]]
        assert choices[0]["label"].startswith("Harbor Food Pantry, Central Square · Harbor Community")
        wrong = requests.get(f"{dev.url}/api/v1/lookup", params={"type": "Patient"}, timeout=30)
        assert wrong.status_code == 422
