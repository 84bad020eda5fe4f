"""Reading a payer's decision out of a ClaimResponse, in every shape the corpus holds and base R4."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from fhircare.care.payer_decision import REVIEW_ACTION, decision_of
from tests.conftest import CORPUS


def corpus_claim_responses() -> Iterator[tuple[str, dict[str, Any]]]:
    for path in sorted(CORPUS.rglob("*.json")):
        if "schema" in path.parts:
            continue
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError):
            continue
        if not isinstance(document, dict):
            continue
        resources = [document] + [e.get("resource") or {} for e in document.get("entry") or []]
        for resource in resources:
            if isinstance(resource, dict) and resource.get("resourceType") == "ClaimResponse":
                yield f"{path.name}#{resource.get('id')}", resource


CORPUS_RESPONSES = dict(corpus_claim_responses())


@pytest.mark.skipif(
    not CORPUS.is_dir(), reason=f"needs the shared corpus at {CORPUS} (../shared/corpus beside the clone)"
)
def test_the_corpus_holds_pas_responses():
    assert len(CORPUS_RESPONSES) >= 4


@pytest.mark.parametrize("name", sorted(CORPUS_RESPONSES))
def test_every_corpus_claim_response_gives_a_decision(name):
    response = CORPUS_RESPONSES[name]
    decision = decision_of(response)
    has_review = REVIEW_ACTION in json.dumps(response)
    # the PAS examples all say A1 (certified in total) somewhere; others fall back on outcome
    if has_review and '"A1"' in json.dumps(response):
        assert decision.decision == "approved", name
        assert decision.x12_code == "A1"
    system = "http://fhircare.example.org/fhir/CodeSystem/prior-auth-decision"
    assert decision.business_status(system)["coding"][0]["system"] == system


def _item(*codes: str) -> dict[str, Any]:
    return {
        "item": [
            {
                "itemSequence": n,
                "adjudication": [
                    {
                        "extension": [
                            {
                                "url": REVIEW_ACTION,
                                "extension": [
                                    {"url": "number", "valueString": f"N{n}"},
                                    {"url": "code", "valueCodeableConcept": {"coding": [{"code": code}]}},
                                ],
                            }
                        ]
                    }
                ],
            }
            for n, code in enumerate(codes, 1)
        ]
    }


@pytest.mark.parametrize(
    ("response", "decision", "final"),
    [
        ({"outcome": "complete", "preAuthRef": "PA-9"}, "approved", True),
        ({"outcome": "complete", "disposition": "see letter"}, "review-needed", False),
        ({"outcome": "queued"}, "pending", False),
        ({"outcome": "error", "disposition": "bad member id"}, "error", True),
        ({"outcome": "partial", "preAuthRef": "PA-2"}, "partially-approved", True),
        ({}, "pending", False),
        ({"outcome": "complete", **_item("A1", "A3")}, "denied", True),  # one item denied: the request is
        ({"outcome": "complete", **_item("A1", "A4")}, "pending", False),  # one item pended: still waiting
        ({"outcome": "complete", **_item("A1", "A2")}, "partially-approved", True),
        ({"outcome": "complete", **_item("C")}, "cancelled", True),
        ({"outcome": "complete", **_item("ZZ")}, "review-needed", False),  # an unknown code is not guessed
        (
            {"outcome": "complete", "extension": [{"url": REVIEW_ACTION, "valueCode": "NA"}]},
            "not-required",
            True,
        ),
    ],
)
def test_decision_rules(response, decision, final):
    found = decision_of(response)
    assert (found.decision, found.final) == (decision, final)


def test_the_authorization_number_prefers_pre_auth_ref_then_the_review_number():
    assert decision_of({"preAuthRef": "PA-1", **_item("A1")}).auth_number == "PA-1"
    assert decision_of(_item("A1")).auth_number == "N1"
