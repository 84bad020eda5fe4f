"""Mappings are data: the overlay folder replaces built-in files by name; bad files fail at load."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

from fhircare.errors import ConfigurationError, PayloadError
from fhircare.mapping import load_mappings
from fhircare.settings import Settings
from fhircare.workflows import get_workflow
from fhircare.workflows.base import RunState

BUILTIN = Settings().builtin_mappings_dir
FHIRCARE = str(Path(sys.executable).with_name("fhircare"))
PAYLOAD = {
    "patient": "Patient/p",
    "service": "diabetes-education",
    "performer": "Organization/o",
    "requester": "Practitioner/c",
    "reason": "diabetes",
    "priority": "routine",
    "due": "2026-12-01",
}


def _plan(settings: Settings) -> list:
    workflow = get_workflow("refer", None, settings)  # type: ignore[arg-type]
    return workflow.plan(RunState(dict(PAYLOAD), "r1", datetime(2026, 1, 1, tzinfo=timezone.utc)))


def test_an_overlay_code_table_replaces_the_builtin_one(tmp_path):
    (tmp_path / "codes").mkdir()
    (tmp_path / "codes" / "services.yaml").write_text(
        "table: services\ncodes:\n  diabetes-education: {system: 'http://hospital.example/services', code: DM-ED, display: Local diabetes class}\n"
    )
    entries = _plan(Settings(mappings_dir=tmp_path))
    assert entries[0].resource["code"]["coding"] == [
        {"system": "http://hospital.example/services", "code": "DM-ED", "display": "Local diabetes class"}
    ]
    assert _plan(Settings())[0].resource["code"]["coding"][0]["system"] == "http://snomed.info/sct"


def test_an_overlay_mapping_replaces_the_builtin_file_of_the_same_name(tmp_path):
    text = (BUILTIN / "refer.yaml").read_text().replace("status: requested", "status: draft")
    (tmp_path / "refer.yaml").write_text(text)
    entries = _plan(Settings(mappings_dir=tmp_path))
    assert entries[1].resource["status"] == "draft"


def test_an_invalid_mapping_fails_at_load_with_file_path_and_reason(tmp_path):
    (tmp_path / "refer.yaml").write_text("workflow: refer\ntitle: Broken\nentries:\n  - name: referral\n")
    with pytest.raises(ConfigurationError) as caught:
        load_mappings(BUILTIN, tmp_path)
    assert (
        "refer.yaml" in str(caught.value)
        and "$.entries[0]" in str(caught.value)
        and "resource" in str(caught.value)
    )


def test_a_mapping_named_after_another_workflow_is_refused(tmp_path):
    shutil.copy(BUILTIN / "refer.yaml", tmp_path / "follow-up.yaml")
    with pytest.raises(ConfigurationError, match="file is named 'follow-up'"):
        load_mappings(BUILTIN, tmp_path)


def test_an_unknown_code_key_names_the_payload_path():
    with pytest.raises(PayloadError) as caught:
        get_workflow("refer", None, Settings()).plan(  # type: ignore[arg-type]
            RunState(
                {**PAYLOAD, "service": "no-such-service"}, "r1", datetime(2026, 1, 1, tzinfo=timezone.utc)
            )
        )
    assert caught.value.issues[0].expression == ("$.service",)


def test_every_builtin_mapping_and_code_table_loads():
    loaded = load_mappings(BUILTIN)
    assert len(loaded.mappings) == 13 and "services" in loaded.codes


def test_cli_prints_a_workflows_input_schema():
    answer = subprocess.run(
        [FHIRCARE, "workflows", "refer", "--schema"], capture_output=True, text=True, check=True
    )
    schema = json.loads(answer.stdout)
    assert schema["title"] == "refer" and "patient" in schema["required"]


def test_a_mapping_set_gets_its_workflow_classes_made_once():
    from fhircare.fhir import FhirClient
    from fhircare.workflows import catalogue, get_workflow, mappings_for

    mappings = mappings_for(Settings())
    first, second = catalogue(mappings), catalogue(mappings)
    assert first == second and first is not second  # callers may change their copy
    assert first["refer"] is second["refer"] and "task" in first
    client = FhirClient("http://fhir.test/r4")
    assert type(get_workflow("refer", client)) is first["refer"]
