"""Every mapping's golden cases: the exact entries a payload becomes (see tests/golden/harness.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fhircare.workflows import WORKFLOWS
from tests.golden.harness import case_files, planned_entries


def test_every_workflow_has_at_least_one_golden_case() -> None:
    covered = {p.parent.name for p in case_files()}
    assert sorted(set(WORKFLOWS) - covered) == []


@pytest.mark.parametrize("path", case_files(), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_payload_maps_to_the_expected_entries(path: Path) -> None:
    case = json.loads(path.read_text())
    assert planned_entries(path.parent.name, case) == case["entries"]
