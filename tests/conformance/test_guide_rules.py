"""(b) The guides' rules (tests/conformance/rules.py) hold on every golden case and on a demo run.

Rules not met yet are listed in OPEN with the reason, and docs/conformance.md says the same; they are
expected to fail (strict xfail), so a rule that starts to hold must leave OPEN.
"""

from __future__ import annotations

from typing import Any

import pytest

from .rules import RULES, Rule, failures
from .written import Written

OPEN: dict[str, str] = {}


def _params() -> list[Any]:
    return [
        pytest.param(rule, id=rule.id, marks=pytest.mark.xfail(reason=OPEN[rule.id], strict=True))
        if rule.id in OPEN
        else pytest.param(rule, id=rule.id)
        for rule in RULES
    ]


def test_every_rule_names_its_guide_version_and_element() -> None:
    for rule in RULES:
        assert rule.guide[0] and rule.guide[1][0].isdigit() and rule.profile and rule.element, rule.id
    assert set(OPEN) <= {rule.id for rule in RULES}


@pytest.mark.parametrize("rule", _params())
def test_rule_holds_on_every_golden_case(rule: Rule, golden: Written) -> None:
    assert failures(golden)[rule.id] == []


@pytest.mark.parametrize("rule", _params())
def test_rule_holds_on_a_demo_run(rule: Rule, demo: Written) -> None:
    assert failures(demo)[rule.id] == []


def _one(resource: dict[str, Any], *others: dict[str, Any]) -> Written:
    written = Written(items=[("bad", resource)])
    for other in others:
        written.by_reference[f"{other['resourceType']}/{other['id']}"] = other
    return written


TASK_CODE = "http://hl7.org/fhir/CodeSystem/task-code"
# resources each of which breaks exactly the named rule: the checks do catch what they describe
BROKEN = {
    "sdohcc-referral-task-requester": {
        "resourceType": "Task",
        "code": {"coding": [{"system": TASK_CODE, "code": "fulfill"}]},
        "focus": {"reference": "ServiceRequest/1"},
        "requester": {"reference": "Practitioner/1"},
    },
    "uscore-provenance-1": {
        "resourceType": "Provenance",
        "agent": [{"who": {"reference": "Practitioner/1"}}],
    },
    "r4-task-fulfill-focus": {
        "resourceType": "Task",
        "code": {"coding": [{"system": TASK_CODE, "code": "fulfill"}]},
    },
    "pas-claim-product-or-service": {
        "resourceType": "Claim",
        "item": [
            {
                "sequence": 1,
                "productOrService": {"coding": [{"system": "http://snomed.info/sct", "code": "1"}]},
            }
        ],
    },
    "pas-coverage-member-id": {"resourceType": "Coverage", "identifier": [{"system": "urn:x", "value": "1"}]},
    "r4-app-4": {"resourceType": "Appointment", "status": "noshow", "cancelationReason": {"text": "away"}},
    "sdohcc-servicerequest-category": {
        "resourceType": "ServiceRequest",
        "reasonCode": [{"coding": [{"system": "http://snomed.info/sct", "code": "733423003"}]}],
    },
    "uscore-documentreference-type": {"resourceType": "DocumentReference"},
    "uscore-careplan-assess-plan": {"resourceType": "CarePlan", "category": []},
    "sdohcc-task-status-reason": {
        "resourceType": "Task",
        "status": "accepted",
        "statusReason": {"text": "x"},
    },
}


@pytest.mark.parametrize("rule_id", sorted(BROKEN))
def test_each_check_catches_what_it_describes(rule_id: str) -> None:
    found = failures(_one(BROKEN[rule_id]))
    assert found[rule_id], f"{rule_id} let a breaking resource through"


def test_a_stale_reminder_is_caught() -> None:
    appointment = {"resourceType": "Appointment", "id": "a1", "status": "cancelled"}
    reminder = {
        "resourceType": "CommunicationRequest",
        "status": "active",
        "category": [{"coding": [{"code": "reminder"}]}],
        "about": [{"reference": "Appointment/a1"}],
    }
    assert failures(_one(reminder, appointment))["r4-reminder-current"]


def test_a_skipped_task_state_is_caught() -> None:
    written = _one({"resourceType": "Task", "id": "t1", "status": "completed"})
    written.task_statuses["Task/t1"] = ["requested", "completed"]
    assert failures(written)["r4-task-state-machine"] == ["bad: requested -> completed"]
