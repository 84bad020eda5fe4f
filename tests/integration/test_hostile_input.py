"""Hostile and broken payloads: each one either runs correctly or is refused, and a refusal writes nothing.

Strategy: a valid payload per workflow (tests/support/cases.py), then hypothesis mutations of the
fields its input schema declares: wrong types, huge strings, deep nesting, unicode, injection-looking
references (``Patient/1?_id=2``, ``../``, absolute URLs to other hosts), unknown fields, missing fields.
Counts of examples tried / refused / written go to test-artifacts/hostile-input.json.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fhircare.errors import IllegalTransition, PayloadError, UnresolvedReference
from fhircare.mapping.validate import payload_references, workflow_schema
from fhircare.settings import Settings
from fhircare.workflows import run
from tests.support.cases import CASES

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
COUNTS: dict[str, dict[str, int]] = {}
REFUSALS = (PayloadError, UnresolvedReference, IllegalTransition)

INJECTIONS = [
    "Patient/1?_id=2",
    "../Patient/1",
    "Patient/../../metadata",
    "http://evil.example/fhir/Patient/1",
    "https://127.0.0.2/fhir/Patient/1",
    "//evil.example/Patient/1",
    "Patient/1#frag",
    "Patient/ 1",
    "Patient/1/_history/1",
    "Patient?identifier=x|y&_include=*",
    "Patient?_id=1&_has:Task:patient:status=x",
    "urn:uuid:0000",
    "Patient/" + "9" * 65,
    "Patient\n/1",
]


def _nested(depth: int) -> Any:
    node: Any = "x"
    for _ in range(depth):
        node = {"a": node}
    return node


hostile_values = st.one_of(
    st.sampled_from(INJECTIONS),
    st.text(min_size=0, max_size=40),
    st.text(alphabet=st.characters(min_codepoint=0x80, max_codepoint=0x2FFFF), min_size=1, max_size=30),
    st.just("A" * 20_000),
    st.integers(),
    st.floats(allow_nan=True),
    st.booleans(),
    st.none(),
    st.lists(st.text(max_size=5), max_size=3),
    st.builds(_nested, st.integers(min_value=50, max_value=400)),
    st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3),
)


def _mutations(fields: list[str]) -> st.SearchStrategy[tuple[str, str, Any]]:
    return st.one_of(
        st.tuples(st.just("replace"), st.sampled_from(fields), hostile_values),
        st.tuples(st.just("delete"), st.sampled_from(fields), st.none()),
        st.tuples(st.just("add"), st.text(min_size=1, max_size=12), hostile_values),
    )


@pytest.fixture(scope="module", autouse=True)
def write_counts():
    yield
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "hostile-input.json").write_text(json.dumps(COUNTS, indent=2, sort_keys=True))


@pytest.mark.parametrize("workflow", sorted(CASES))
def test_hostile_payloads_are_run_correctly_or_refused_without_writing(workflow, client, fhir_server, uid):
    name = workflow.split("+")[0]
    base = CASES[workflow](client, uid).payload
    fields = sorted(workflow_schema(Settings().profiles_dir, name)["properties"])
    counts = COUNTS.setdefault(workflow, {"tried": 0, "refused": 0, "written": 0})

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(st.lists(_mutations(fields), min_size=1, max_size=3))
    def check(mutations: list[tuple[str, str, Any]]) -> None:
        payload = json.loads(json.dumps(base))
        for kind, field, value in mutations:
            if kind == "delete":
                payload.pop(field, None)
            else:
                payload[field] = value
        before = fhir_server.resource_counts()
        counts["tried"] += 1
        try:
            result = run(name, payload, client)
        except REFUSALS as refused:
            counts["refused"] += 1
            assert refused.message  # a clear reason
            assert fhir_server.resource_counts() == before
            return
        counts["written"] += 1
        for reference in result.written:  # what was written is real and readable
            assert client.read_reference(reference)["resourceType"] == reference.split("/")[0]
        for _, value in payload_references(Settings().profiles_dir, name, payload):
            if value.startswith(("http://", "https://", "//")) or ".." in value:
                raise AssertionError(f"a reference outside the FHIR base was accepted: {value}")

    check()
    assert counts["refused"] > 0 and counts["tried"] >= 60
