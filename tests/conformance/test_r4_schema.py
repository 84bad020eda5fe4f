"""(a) Every resource fhircare writes is valid against the official R4 JSON Schema."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

import jsonschema

from .conftest import needs_corpus
from .written import R4_SCHEMA, Written

pytestmark = needs_corpus


@lru_cache(maxsize=1)
def _validator() -> jsonschema.Draft6Validator:
    schema = json.loads(R4_SCHEMA.read_text(encoding="utf-8"))
    return jsonschema.Draft6Validator(schema)


def schema_errors(written: Written) -> list[str]:
    out = []
    for label, resource in written.items:
        for error in _validator().iter_errors(resource):
            where = "/".join(str(p) for p in error.absolute_path)
            out.append(f"{label} at {where or '(root)'}: {error.message[:160]}")
    return out


def test_the_schema_refuses_what_r4_refuses() -> None:
    bad: dict[str, Any] = {"resourceType": "Task", "status": "bogus", "intent": "order"}
    assert any("bogus" in e.message for e in _validator().iter_errors(bad))


def test_every_golden_case_writes_valid_r4(golden: Written) -> None:
    assert len(golden.items) > 40
    assert schema_errors(golden) == []


def test_a_demo_run_writes_valid_r4(demo: Written) -> None:
    assert len(demo.items) > 150
    assert schema_errors(demo) == []
