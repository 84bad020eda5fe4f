"""A workflow added by YAML alone: a FHIRCARE_MAPPINGS folder with housing-referral.yaml and its input
schema, no Python. It is listed, validated, checked and written like a built-in one, on both servers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fhircare.errors import PayloadError, UnresolvedReference
from fhircare.settings import Settings
from fhircare.workflows import describe, run
from tests.support.cases import basics
from tests.support.clock import day

OVERLAY = Path(__file__).resolve().parents[1] / "support" / "overlays" / "housing"
FHIRCARE = str(Path(sys.executable).with_name("fhircare"))


@pytest.fixture()
def settings():
    return Settings.from_env({"FHIRCARE_MAPPINGS": str(OVERLAY)})


def _payload(b, uid):
    return {
        "patient": b["patient"],
        "program": b["org"],
        "requester": b["coordinator"],
        "due": day(22),
        "note": uid,
    }


def test_a_yaml_only_workflow_is_listed_and_runs_like_a_built_in_one(client, settings, uid, fhir_server):
    assert "housing-referral" in {w["workflow"] for w in describe(settings)}
    b = basics(client, uid)
    result = run("housing-referral", _payload(b, uid), client, settings=settings)

    assert [r.split("/")[0] for r in result.written] == ["ServiceRequest", "Task", "Provenance"]
    request, task, provenance = (client.read_reference(r) for r in result.written)
    assert (
        request["subject"]["reference"] == b["patient"]
        and request["category"][0]["coding"][0]["code"] == "homelessness"
    )
    assert task["focus"]["reference"] == result.written[0] and task["owner"]["reference"] == b["org"]
    assert sorted(t["reference"] for t in provenance["target"]) == sorted(result.written[:2])
    counts = fhir_server.resource_counts()
    assert run("housing-referral", _payload(b, uid), client, settings=settings).repeated
    assert fhir_server.resource_counts() == counts


def test_its_schema_and_references_are_checked_before_anything_is_written(client, settings, uid, fhir_server):
    b = basics(client, uid)
    counts = fhir_server.resource_counts()
    with pytest.raises(PayloadError) as bad:
        run("housing-referral", {**_payload(b, uid), "due": "soon"}, client, settings=settings)
    assert any("$.due" in i.expression for i in bad.value.issues)
    with pytest.raises(UnresolvedReference) as missing:
        run(
            "housing-referral",
            {**_payload(b, uid), "program": f"Organization/none-{uid}"},
            client,
            settings=settings,
        )
    assert missing.value.issues[0].expression == ("$.program",)
    assert fhir_server.resource_counts() == counts


def test_the_cli_lists_and_runs_it_from_the_folder(client, uid, fhir_server):
    env = {**os.environ, "FHIRCARE_MAPPINGS": str(OVERLAY)}
    listed = subprocess.run(
        [FHIRCARE, "workflows"], capture_output=True, text=True, env=env, timeout=60, check=False
    )
    assert listed.returncode == 0 and "housing-referral" in listed.stdout
    b = basics(client, uid)
    ran = subprocess.run(
        [FHIRCARE, "run", "housing-referral", "-", "--base", fhir_server.base_url],
        input=json.dumps(_payload(b, uid)),
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["written"][0].startswith("ServiceRequest/")
