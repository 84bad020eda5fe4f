"""Whole-caseload views through Bulk Data ``$export`` give what paging gives; export levels and filters.

On a server that offers no export (the second server of the suite) the same comparisons exercise the
fallback to paging.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from fhircare.fhir import FhirClient
from fhircare.fhir.bulk import ExportEvent, export, export_offered
from fhircare.views.caseload import caseload
from fhircare.views.gaps import find_gaps
from tests.support.cases import make
from tests.support.clock import date_at, day, today

FHIRCARE = str(Path(sys.executable).with_name("fhircare"))
TODAY = today()
FULFILL = {"coding": [{"system": "http://hl7.org/fhir/CodeSystem/task-code", "code": "fulfill"}]}


def _caseload_of_two_coordinators(client: FhirClient, uid: str) -> dict[str, Any]:
    """Two coordinators, six patients: referrals in several states, no-shows, plans, coverage, goals."""
    coordinators = [
        make(client, {"resourceType": "Practitioner", "name": [{"family": f"Bulk{uid}", "given": [g]}]})
        for g in ("Ada", "Ben")
    ]
    patients = []
    for i in range(6):
        patient = make(client, {"resourceType": "Patient", "name": [{"family": f"Bulk{uid}-{i}"}]})
        patients.append(patient)
        coordinator = {"reference": coordinators[i % 2]}
        request = make(
            client,
            {
                "resourceType": "ServiceRequest",
                "status": "active",
                "intent": "order",
                "subject": {"reference": patient},
                "authoredOn": day(-29),
            },
        )
        make(
            client,
            {
                "resourceType": "Task",
                "status": ("requested", "accepted", "completed")[i % 3],
                "intent": "order",
                "code": FULFILL,
                "for": {"reference": patient},
                "focus": {"reference": request},
                "requester": coordinator,
                "authoredOn": day(-29),
                "executionPeriod": {"end": day(-20)},
            },
        )
        make(
            client,
            {
                "resourceType": "Task",
                "status": "requested",
                "intent": "order",
                "for": {"reference": patient},
                "owner": coordinator,
                "restriction": {"period": {"end": day(-10) if i % 2 else day(20)}},
            },
        )
        make(
            client,
            {
                "resourceType": "CarePlan",
                "status": "active",
                "intent": "plan",
                "subject": {"reference": patient},
            },
        )
        if i % 3 == 2:
            make(
                client,
                {
                    "resourceType": "Appointment",
                    "status": "noshow",
                    "basedOn": [{"reference": request}],
                    "participant": [{"actor": {"reference": patient}, "status": "accepted"}],
                },
            )
        make(
            client,
            {
                "resourceType": "Goal",
                "lifecycleStatus": "active",
                "description": {"text": "Walk"},
                "subject": {"reference": patient},
                "target": [{"dueDate": day(-29)}],
            },
        )
    return {"coordinators": coordinators, "patients": patients}


@pytest.fixture()
def world(client: FhirClient, uid: str) -> dict[str, Any]:
    return _caseload_of_two_coordinators(client, uid)


def test_caseload_through_bulk_export_equals_caseload_by_paging(client, world):
    events: list[ExportEvent] = []
    paged = caseload(client, since=date_at(-29), until=TODAY, today=TODAY)
    exported = caseload(
        client, since=date_at(-29), until=TODAY, today=TODAY, bulk=True, listener=events.append
    )
    assert [r.as_dict() for r in exported] == [r.as_dict() for r in paged]
    mine = {r.coordinator: r for r in exported}[world["coordinators"][1]]
    assert (mine.patients, mine.open_tasks, mine.overdue_tasks) == (3, 3, 3)
    if export_offered(client):
        assert [e.kind for e in events][:1] == ["kicked-off"] and "ready" in {e.kind for e in events}
    else:
        assert events == []


def test_gaps_through_bulk_export_equal_gaps_by_paging_for_everyone_and_for_an_owner(client, world):
    owner = world["coordinators"][0]
    for who in (None, owner):
        paged = find_gaps(client, owner=who, today=TODAY)
        exported = find_gaps(client, owner=who, today=TODAY, bulk=True)
        assert [g.as_dict() for g in exported] == [g.as_dict() for g in paged]
    mine = {g.patient for g in find_gaps(client, owner=owner, today=TODAY, bulk=True)}
    assert mine == set(world["patients"][0::2])


@pytest.mark.embedded_only(reason="the export levels and filters of the embedded server")
def test_a_group_export_holds_only_its_members_resources_of_the_asked_types(client, world):
    members = world["patients"][:2]
    group = make(
        client,
        {
            "resourceType": "Group",
            "type": "person",
            "actual": True,
            "member": [{"entity": {"reference": p}} for p in members],
        },
    )
    found = list(export(client, group=group, types=["Task"]))
    assert {r["resourceType"] for r in found} == {"Task"}
    assert {r["for"]["reference"] for r in found} == set(members)
    assert len(found) == 4  # a referral and a follow-up each


@pytest.mark.embedded_only(reason="the export levels and filters of the embedded server")
def test_a_since_export_holds_only_what_changed_since(client, uid):
    make(client, {"resourceType": "Patient", "name": [{"family": f"Before{uid}"}]})
    time.sleep(0.01)  # the next write gets a later lastUpdated
    later = client.create({"resourceType": "Patient", "name": [{"family": f"After{uid}"}]})
    found = list(export(client, types=["Patient"], since=later["meta"]["lastUpdated"]))
    families = {n["family"] for r in found for n in r.get("name", [])}
    assert f"After{uid}" in families and f"Before{uid}" not in families


def test_cli_bulk_views_print_what_paging_prints_with_export_progress_on_stderr(fhir_server, client, world):
    for command in (["gaps", "--owner", world["coordinators"][1]], ["caseload"]):
        base = [FHIRCARE, "--base", fhir_server.base_url, *command, "--format", "json"]
        paged = subprocess.run(base, capture_output=True, text=True, check=True)
        exported = subprocess.run([*base, "--bulk"], capture_output=True, text=True, check=True)
        assert json.loads(exported.stdout) == json.loads(paged.stdout)
        if export_offered(client):
            assert "Bulk export started" in exported.stderr and "export ready" in exported.stderr
