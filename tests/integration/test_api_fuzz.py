"""Bad input against every sidecar endpoint of openapi.json (hypothesis, bounded): never a 5xx, never
a traceback, and nothing written by a rejected request."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fhircare.settings import Settings
from tests.integration.sidecar_harness import Sidecar
from tests.integration.test_hostile_input import hostile_values
from tests.support.cases import CASES

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
COUNTS = {"tried": 0, "4xx": 0, "2xx": 0}


@pytest.fixture(scope="module")
def dev(fhir_server) -> Iterator[Sidecar]:
    with Sidecar(Settings(base_url=fhir_server.base_url)) as running:
        yield running
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "api-fuzz.json").write_text(json.dumps(COUNTS, indent=2))


def _check(answer: requests.Response, before: dict, after: dict) -> None:
    COUNTS["tried"] += 1
    assert answer.status_code < 500, answer.text
    assert "Traceback" not in answer.text
    if answer.status_code >= 400:
        COUNTS["4xx"] += 1
        assert answer.json()["resourceType"] == "OperationOutcome"
        assert after == before, "a rejected request wrote something"
    else:
        COUNTS["2xx"] += 1


def test_every_path_in_openapi_answers_bad_input_without_a_5xx(dev, fhir_server, client, uid):
    document = requests.get(f"{dev.url}/api/v1/openapi.json", timeout=30).json()
    workflows = sorted(p.rsplit("/", 1)[1] for p in document["paths"] if p.startswith("/api/v1/workflows/"))
    valid = {name: CASES[name](client, uid).payload for name in workflows if name in CASES}

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(
        workflow=st.sampled_from(workflows),
        field=st.text(min_size=1, max_size=20),
        value=hostile_values,
        mode=st.sampled_from(["replace-field", "whole-body", "raw-text"]),
    )
    def post_workflow(workflow: str, field: str, value: object, mode: str) -> None:
        base = dict(valid.get(workflow, {}))
        keys = sorted(base) or [field]
        if mode in ("replace-field", "whole-body"):
            body = {**base, keys[len(field) % len(keys)]: value} if mode == "replace-field" else value
            # json.dumps writes NaN/Infinity as a careless client would; the API must refuse them (400)
            kwargs: dict[str, object] = {
                "data": json.dumps(body).encode("utf-8", "surrogatepass"),
                "headers": {"Content-Type": "application/json"},
            }
        else:
            kwargs = {
                "data": str(value)[:2000].encode("utf-8", "surrogatepass"),
                "headers": {"Content-Type": "application/json"},
            }
        before = fhir_server.resource_counts()
        answer = requests.post(f"{dev.url}/api/v1/workflows/{workflow}", timeout=30, **kwargs)
        _check(answer, before, fhir_server.resource_counts() if answer.status_code >= 400 else before)

    @settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(
        path=st.sampled_from(
            [
                "/api/v1/worklist",
                "/api/v1/gaps",
                "/api/v1/authorizations",
                "/api/v1/patients/{}/summary",
                "/api/v1/tasks/{}/transition",
            ]
        ),
        text=st.text(max_size=40),
        value=hostile_values,
    )
    def query(path: str, text: str, value: object) -> None:
        before = fhir_server.resource_counts()
        target = path.format(requests.utils.quote(text, safe="") or "x")
        if target.endswith("/transition"):
            answer = requests.post(f"{dev.url}{target}", json={"to": value}, timeout=30)
        else:
            answer = requests.get(
                f"{dev.url}{target}",
                params={"owner": str(value)[:300], "patient": text, "due_before": text, "requester": text},
                timeout=30,
            )
        _check(answer, before, fhir_server.resource_counts() if answer.status_code >= 400 else before)

    post_workflow()
    query()
    assert COUNTS["4xx"] > 0
