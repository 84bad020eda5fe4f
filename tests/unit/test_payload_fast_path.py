"""The compiled fast path of the payload and profile checks answers exactly what jsonschema answers.

Only a document the compiled validator accepts skips jsonschema, so the one way it could go wrong is
accepting what jsonschema refuses (a regex or format dialect difference). Every golden payload, each
of its fields replaced by awkward values, and random text in every field are checked both ways.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fhircare.mapping import validate
from fhircare.settings import Settings
from tests.support.places import places, replaced

WORKFLOWS = Settings().profiles_dir / "workflows"
GOLDEN = Path(__file__).resolve().parents[1] / "golden"
AWKWARD: list[Any] = [
    "",
    " ",
    "\x1c",  # white space to Python's \s, not to Rust's
    "a\x1fb",
    "\x85",
    "a\x85b",
    "\ufeffPatient/1",
    "Patient/1\n",  # Python's $ matches before a final newline
    "Patient/\u0663",  # an Arabic-Indic digit: \d in Python, not in Rust
    "2026-02-30",
    "2026-13-01",
    "2024-02-29",
    "0000-01-01",  # year 0: Rust takes it, date.fromisoformat does not
    "2026-06-10T09:00:00Z",
    "2026-06-10T25:00:00Z",
    "https://example.org/a b",
    "urn:x",
    "\ud800",  # a lone surrogate
    "a" * 5000,
    10**40,
    1.0,
    -1,
    None,
    True,
    [],
    {},
    ["Patient/1"],
]


def _payloads() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted(GOLDEN.glob("*/*.json")):
        case = json.loads(path.read_text(encoding="utf-8"))
        payload = case.get("payload")
        if isinstance(payload, dict) and (WORKFLOWS / f"{path.parent.name}.schema.json").is_file():
            found.append((path.parent.name, payload))
    return found


def _plain(workflow: str) -> jsonschema.protocols.Validator:
    registry = validate._registry(WORKFLOWS)
    return jsonschema.Draft202012Validator(
        validate.load_schema(WORKFLOWS / f"{workflow}.schema.json"),
        registry=registry,
        format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
    )


def _fast(workflow: str) -> Any:
    return validate.compiled_validator(
        validate.load_schema(WORKFLOWS / f"{workflow}.schema.json"), validate._registry(WORKFLOWS)
    )


def _errors(validator: Any, document: Any) -> list[tuple[list[Any], str, str]]:
    return sorted(
        ((list(e.absolute_path), str(e.validator), e.message) for e in validator.iter_errors(document)),
        key=str,
    )


def _variants(payload: dict[str, Any]) -> list[dict[str, Any]]:
    return [replaced(payload, at, odd) for at in places(payload) for odd in AWKWARD]


CASES = _payloads()


def test_the_fast_path_is_in_use():
    if validate.jsonschema_rs is None:
        pytest.fail("jsonschema-rs is a dependency of fhircare; it is not installed here")
    workflow, _ = CASES[0]
    assert _fast(workflow).fast is not None


@pytest.mark.parametrize(("workflow", "payload"), CASES, ids=[w for w, _ in CASES])
def test_every_golden_payload_and_its_awkward_variants_get_jsonschemas_answer(workflow, payload):
    plain, fast = _plain(workflow), _fast(workflow)
    assert _errors(fast, payload) == _errors(plain, payload) == []
    refused = 0
    for document in _variants(payload):
        expected = _errors(plain, document)
        assert _errors(fast, document) == expected, document
        refused += bool(expected)
    assert refused > 0  # the variants do reach the refusing side


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_text_in_any_field_gets_jsonschemas_answer(data):
    workflow, payload = data.draw(st.sampled_from(CASES))
    at = data.draw(st.sampled_from(places(payload)))
    text = data.draw(st.text(min_size=0, max_size=40))
    document = replaced(payload, at, text)
    assert _errors(_fast(workflow), document) == _errors(_plain(workflow), document)
