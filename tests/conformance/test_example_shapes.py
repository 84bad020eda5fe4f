"""(c) What fhircare writes has the shape of the guides' own examples in ../shared/corpus: every element
that all the US Core, SDOHCC and Da Vinci examples of a resource type carry, fhircare's resources of
that type carry too (except those listed in NOT_CARRIED, with the reason; docs/conformance.md)."""

from __future__ import annotations

import json
from typing import Any

from .conftest import needs_corpus
from .written import CORPUS, Written

pytestmark = needs_corpus

GUIDE_PREFIXES = ("uscore-", "sdohcc", "davinci-", "priorauth-ri-", "inferno-pas-")
IGNORED = {"id", "meta", "text", "resourceType"}  # server-assigned, or checked by their own rules
NOT_CARRIED = {
    ("Patient", "address"): "enroll takes no address (coordinators' intake has none)",
    ("Patient", "extension"): "US Core race/ethnicity/birth sex extensions: enroll does not collect them",
    ("RelatedPerson", "address"): "enroll takes a relative's name, relationship and phone only",
    ("RelatedPerson", "birthDate"): "enroll takes a relative's name, relationship and phone only",
}


def common_elements() -> dict[str, set[str]]:
    """Resource type -> the elements every guide example of that type carries (types with 2+ examples)."""
    out = {}
    for folder in sorted((CORPUS / "r4" / "examples").iterdir()):
        examples: list[dict[str, Any]] = [
            json.loads(p.read_text(encoding="utf-8"))
            for p in sorted(folder.glob("*.json"))
            if p.name.startswith(GUIDE_PREFIXES)
        ]
        if len(examples) >= 2:
            out[folder.name] = set.intersection(*(set(e) for e in examples)) - IGNORED
    return out


def missing_elements(written: Written) -> list[str]:
    common = common_elements()
    out = []
    for label, resource in written.items:
        expected = common.get(resource["resourceType"], set())
        for element in sorted(expected - set(resource)):
            if (resource["resourceType"], element) not in NOT_CARRIED:
                out.append(f"{label}: no {element}")
    return out


def test_the_guides_examples_give_shapes_for_what_fhircare_writes() -> None:
    common = common_elements()
    assert {"Task", "ServiceRequest", "Claim", "Coverage", "Provenance", "Goal"} <= set(common)
    assert {"for", "intent", "status"} <= common["Task"]


def test_golden_cases_carry_what_the_guides_examples_carry(golden: Written) -> None:
    assert missing_elements(golden) == []


def test_a_demo_run_carries_what_the_guides_examples_carry(demo: Written) -> None:
    assert missing_elements(demo) == []
