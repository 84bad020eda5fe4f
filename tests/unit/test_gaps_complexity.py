"""Care gaps grow linearly with the caseload: per-patient time at 2,000 patients stays within 1.5x of 200.

The caseload is built in memory (the shapes the workflows write: a plan, a referral with its Task and
follow-up, coverage, a goal, some appointments and prior authorizations per patient), so no server is
needed: ``evaluate`` takes already-fetched lists. Time is the process's CPU time, best of three runs,
so another job on the machine does not decide the outcome.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import date, timedelta
from typing import Any

import pytest

from fhircare.settings import Settings
from fhircare.views.gap_rules import Rule, load_rules
from fhircare.views.gaps import Gap, evaluate

TODAY = date(2026, 6, 30)
TASK_CODES = "http://hl7.org/fhir/CodeSystem/task-code"


def _day(days_ago: int) -> str:
    return (TODAY - timedelta(days=days_ago)).isoformat()


def _coded(system: str, code: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code}]}


def _sent_to_partner(i: int, patient: dict[str, Any], request: str) -> dict[str, Any]:
    """A referral Task sent to a partner (the exchange link on it), in each exchange gap's shapes."""
    link = [
        {"url": "partner", "valueString": "food-bank"},
        {"url": "remote", "valueUri": f"https://partner.example/fhir/Task/r{i}"},
        {"url": "synced-at", "valueInstant": _day(2 if i % 2 else -1) + "T08:00:00.000Z"},
    ]
    if i % 10 == 3:
        link.append({"url": "conflict", "extension": [{"url": "remote-status", "valueString": "completed"}]})
    return {
        "resourceType": "Task",
        "id": f"x{i}",
        "status": ("requested", "rejected", "accepted")[i % 3],
        "intent": "order",
        "for": patient,
        "focus": {"reference": request},
        "authoredOn": _day(i % 7) + "T09:00:00Z",
        "code": _coded(TASK_CODES, "fulfill"),
        "extension": [
            {"url": "https://fhircare.example/StructureDefinition/exchange-link", "extension": link}
        ],
    }


def synthetic_caseload(patients: int) -> dict[str, list[dict[str, Any]]]:
    """A caseload in which every rule fires for some patients and not for others."""
    lists: dict[str, list[dict[str, Any]]] = {
        name: [] for name in ("tasks", "requests", "appointments", "careplans", "coverages", "goals")
    }
    for i in range(patients):
        patient = {"reference": f"Patient/p{i}"}
        request = f"ServiceRequest/sr{i}"
        category = "736372004" if i % 7 == 0 else "734163000"  # discharge plans for some
        lists["careplans"].append(
            {
                "resourceType": "CarePlan",
                "id": f"cp{i}",
                "status": "active",
                "intent": "plan",
                "category": [_coded("http://snomed.info/sct", category)],
                "subject": patient,
                "meta": {"lastUpdated": _day(100 if i % 11 == 0 else 3) + "T09:00:00Z"},
            }
        )
        lists["requests"].append(
            {
                "resourceType": "ServiceRequest",
                "id": f"sr{i}",
                "status": "active",
                "intent": "order",
                "subject": patient,
                "authoredOn": _day(i % 30),
            }
        )
        lists["tasks"] += [
            {
                "resourceType": "Task",
                "id": f"t{i}",
                "status": ("requested", "accepted", "completed")[i % 3],
                "intent": "order",
                "for": patient,
                "focus": {"reference": request},
                "authoredOn": _day(i % 30),
                "code": _coded(TASK_CODES, "fulfill"),
                "restriction": {"period": {"end": _day(i % 20 - 10)}},
            },
            {
                "resourceType": "Task",
                "id": f"f{i}",
                "status": "requested",
                "intent": "order",
                "for": patient,
                "basedOn": [{"reference": request}],
                "restriction": {"period": {"end": _day(i % 13 - 5)}},
            },
        ]
        if i % 4 == 1:
            denied = i % 8 == 1
            lists["tasks"].append(
                {
                    "resourceType": "Task",
                    "id": f"pa{i}",
                    "status": "completed" if denied else "requested",
                    "intent": "order",
                    "for": patient,
                    "basedOn": [{"reference": request}],
                    "authoredOn": _day(i % 30),
                    "code": _coded(TASK_CODES, "approve"),
                    "businessStatus": _coded(
                        "urn:fhircare:prior-auth-decision", "denied" if denied else "pending"
                    ),
                }
            )
        if i % 3 == 2:
            lists["appointments"].append(
                {
                    "resourceType": "Appointment",
                    "id": f"a{i}",
                    "status": "noshow" if i % 6 == 5 else "booked",
                    "basedOn": [{"reference": request}],
                    "participant": [{"actor": patient, "status": "accepted"}],
                }
            )
        if i % 5 == 3:
            lists["requests"].append(
                {
                    "resourceType": "ServiceRequest",
                    "id": f"xr{i}",
                    "status": "active",
                    "intent": "order",
                    "subject": patient,
                    "authoredOn": _day(i % 6),
                }
            )
            lists["tasks"].append(_sent_to_partner(i, patient, f"ServiceRequest/xr{i}"))
        lists["coverages"].append(
            {
                "resourceType": "Coverage",
                "id": f"c{i}",
                "status": "active",
                "beneficiary": patient,
                "payor": [{"reference": "Organization/payer"}],
                "period": {"end": _day(30 if i % 20 == 7 else -300)},
            }
        )
        lists["goals"].append(
            {
                "resourceType": "Goal",
                "id": f"g{i}",
                "lifecycleStatus": "active",
                "description": {"text": "Walk daily"},
                "subject": patient,
                "target": [{"dueDate": _day(i % 10 - 5)}],
            }
        )
    return lists


def _cpu_seconds(rules: list[Rule], lists: dict[str, list[dict[str, Any]]]) -> tuple[float, list[Gap]]:
    started = time.process_time()
    gaps = evaluate(rules, lists, TODAY)
    return time.process_time() - started, gaps


@pytest.fixture(scope="module")
def rules() -> list[Rule]:
    return load_rules(Settings())


def test_gaps_per_patient_cost_stays_flat_from_200_to_2000_patients(rules):
    small, large = synthetic_caseload(200), synthetic_caseload(2000)
    small_best, small_gaps = min((_cpu_seconds(rules, small) for _ in range(3)), key=lambda r: r[0])
    large_best = float("inf")
    for _ in range(3):  # best of three, stopping as soon as one run is within the bound
        seconds, large_gaps = _cpu_seconds(rules, large)
        large_best = min(large_best, seconds)
        if large_best / 2000 <= 1.5 * small_best / 200:
            break
    ratio = (large_best / 2000) / (small_best / 200)
    assert ratio <= 1.5, f"per-patient time grew {ratio:.2f}x from 200 to 2,000 patients"
    # ten times the caseload has about ten times the gaps, rule by rule (the patterns repeat unevenly)
    small_counts, large_counts = Counter(g.rule for g in small_gaps), Counter(g.rule for g in large_gaps)
    assert set(small_counts) == {r.id for r in rules}
    for rule, count in small_counts.items():
        assert 9 * count <= large_counts[rule] <= 11 * count, rule


def test_a_follow_up_written_for_another_patient_still_closes_the_gap(rules):
    lists = synthetic_caseload(6)
    noshow = next(a for a in lists["appointments"] if a["status"] == "noshow")
    patient = noshow["participant"][0]["actor"]["reference"]
    before = {g.resource for g in evaluate(rules, lists, TODAY) if g.rule == "noshow-without-follow-up"}
    lists["tasks"].append(
        {
            "resourceType": "Task",
            "id": "other",
            "status": "requested",
            "intent": "order",
            "for": {"reference": "Patient/p0" if patient != "Patient/p0" else "Patient/p1"},
            "basedOn": [{"reference": f"Appointment/{noshow['id']}"}],
        }
    )
    after = {g.resource for g in evaluate(rules, lists, TODAY) if g.rule == "noshow-without-follow-up"}
    assert f"Appointment/{noshow['id']}" in before - after
