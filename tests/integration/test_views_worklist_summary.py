"""Worklist and patient summary against the embedded server: content, order, filters, request counts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fhircare.fhir import FhirClient
from fhircare.views.summary import patient_summary
from fhircare.views.worklist import stream_worklist, worklist
from fhircare.workflows import run
from tests.support.clock import at, day, today

FHIRCARE = str(Path(sys.executable).with_name("fhircare"))
TODAY = today()


def _task(
    owner: str, patient: str, focus: str | None, priority: str, due: str, status: str = "requested"
) -> dict:
    task = {
        "resourceType": "Task",
        "status": status,
        "intent": "order",
        "priority": priority,
        "description": f"{priority} task due {due}",
        "for": {"reference": patient},
        "owner": {"reference": owner},
        "authoredOn": at(-9, "09:00"),
        "restriction": {"period": {"end": f"{due}T23:59:59Z"}},
    }
    if focus:
        task["focus"] = {"reference": focus}
    return task


def _load(client: FhirClient, resources: list[dict]) -> list[str]:
    refs = []
    for start in range(0, len(resources), 250):
        chunk = resources[start : start + 250]
        answer = client.transaction(
            {
                "entry": [
                    {"resource": r, "request": {"method": "POST", "url": r["resourceType"]}} for r in chunk
                ]
            }
        )
        refs += [
            "/".join(e["response"]["location"].split("/_history")[0].split("/")[-2:]) for e in answer["entry"]
        ]
    return refs


@pytest.fixture()
def caseload(client: FhirClient, uid: str) -> dict[str, str]:
    patient = client.create(
        {
            "resourceType": "Patient",
            "name": [{"family": "Moreau", "given": ["Lea"]}],
            "birthDate": "1950-02-03",
        }
    )
    owner = client.create({"resourceType": "Practitioner", "name": [{"family": f"Owner{uid}"}]})
    other = client.create({"resourceType": "Practitioner", "name": [{"family": "Other"}]})
    request = client.create(
        {
            "resourceType": "ServiceRequest",
            "status": "active",
            "intent": "order",
            "code": {"text": "Cardiology consult"},
            "subject": {"reference": f"Patient/{patient['id']}"},
        }
    )
    return {
        "patient": f"Patient/{patient['id']}",
        "owner": f"Practitioner/{owner['id']}",
        "other": f"Practitioner/{other['id']}",
        "request": f"ServiceRequest/{request['id']}",
    }


def test_worklist_orders_overdue_first_then_priority_then_due(client, caseload):
    p, o, sr = caseload["patient"], caseload["owner"], caseload["request"]
    _load(
        client,
        [
            _task(o, p, sr, "routine", day(10)),
            _task(o, p, sr, "stat", day(20)),
            _task(o, p, None, "routine", day(-9)),  # overdue
            _task(o, p, None, "urgent", day(5)),
            _task(o, p, None, "urgent", day(2)),
            _task(o, p, None, "asap", day(-1)),  # overdue
            _task(o, p, None, "routine", day(1), status="completed"),  # closed: not listed
            _task(caseload["other"], p, None, "stat", day(-9)),  # someone else's
        ],
    )
    rows = worklist(client, owners=[o], today=TODAY)

    assert [(r.priority, r.due) for r in rows] == [
        ("asap", day(-1)),
        ("routine", day(-9)),
        ("stat", day(20)),
        ("urgent", day(2)),
        ("urgent", day(5)),
        ("routine", day(10)),
    ]
    assert [r.overdue for r in rows] == [True, True, False, False, False, False]
    assert rows[2].patient_name == "Lea Moreau"
    assert rows[2].focus == "Cardiology consult"
    assert rows[2].age_days == 9


def test_worklist_filters_by_due_date_patient_and_status(client, caseload):
    p, o = caseload["patient"], caseload["owner"]
    _load(
        client,
        [
            _task(o, p, None, "routine", day(-5)),
            _task(o, p, None, "routine", day(25), status="accepted"),
        ],
    )

    assert [r.due for r in worklist(client, owners=[o], due_before=day(20), today=TODAY)] == [day(-5)]
    assert [r.status for r in worklist(client, owners=[o], statuses=["accepted"], today=TODAY)] == [
        "accepted"
    ]
    assert worklist(client, owners=[o], patient="Patient/not-this-one", today=TODAY) == []


def test_worklist_of_1000_tasks_with_pages_of_100_takes_exactly_10_requests(
    client, caseload, server_requests
):
    p, o, sr = caseload["patient"], caseload["owner"], caseload["request"]
    _load(client, [_task(o, p, sr, "routine", day(21)) for _ in range(1000)])
    included = client.include_works("Task", "Task:focus")  # learned once per server, not the view's cost
    before = server_requests()

    rows = worklist(client, owners=[o], page_size=100, today=TODAY)

    assert len(rows) == 1000
    assert len({r.task for r in rows}) == 1000
    assert all(r.patient_name == "Lea Moreau" and r.focus == "Cardiology consult" for r in rows)
    # ten pages; on a server that ignores _include, one batch per page names patients and foci
    assert server_requests() - before == (10 if included else 20)


def test_worklist_without_include_uses_one_batch_per_page_not_one_read_per_task(
    client, caseload, server_requests
):
    p, o, sr = caseload["patient"], caseload["owner"], caseload["request"]
    _load(client, [_task(o, p, sr, "routine", day(21)) for _ in range(30)])
    before = server_requests()

    rows = list(stream_worklist(client, owners=[o], page_size=10, today=TODAY, use_include=False))

    assert len(rows) == 30 and all(r.patient_name == "Lea Moreau" for r in rows)
    assert server_requests() - before == 6  # 3 pages + 3 batches


def test_worklist_cli_json_matches_the_library(fhir_server, client, caseload):
    p, o = caseload["patient"], caseload["owner"]
    _load(client, [_task(o, p, None, "urgent", day(5)), _task(o, p, None, "stat", day(6))])
    answer = subprocess.run(
        [FHIRCARE, "--base", fhir_server.base_url, "worklist", "--owner", o, "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
    )
    printed = json.loads(answer.stdout)
    assert [row["priority"] for row in printed] == ["stat", "urgent"]
    assert {row["patient_name"] for row in printed} == {"Lea Moreau"}


def test_summary_is_one_request_and_shows_plan_tasks_and_family(client, caseload, server_requests, uid):
    p, o = caseload["patient"], caseload["owner"]
    program = client.create({"resourceType": "Organization", "name": "Heart program"})
    goal = client.create(
        {
            "resourceType": "Goal",
            "lifecycleStatus": "active",
            "description": {"text": "Walk 30 minutes a day"},
            "subject": {"reference": p},
            "target": [{"dueDate": day(83)}],
        }
    )
    plan = client.create(
        {
            "resourceType": "CarePlan",
            "status": "active",
            "intent": "plan",
            "title": "Heart failure plan",
            "subject": {"reference": p},
            "goal": [{"reference": f"Goal/{goal['id']}"}],
        }
    )
    run(
        "refer",
        {
            "patient": p,
            "service": "cardiology-referral",
            "performer": f"Organization/{program['id']}",
            "requester": o,
            "reason": "heart-failure",
            "priority": "urgent",
            "due": day(174),
            "care_plan": f"CarePlan/{plan['id']}",
        },
        client,
    )
    client.create(
        {
            "resourceType": "RelatedPerson",
            "patient": {"reference": p},
            "name": [{"family": "Moreau", "given": ["Paul"]}],
            "relationship": [{"text": "son"}],
            "telecom": [{"system": "phone", "value": "555-0101"}],
        }
    )
    client.create(
        {
            "resourceType": "Appointment",
            "status": "noshow",
            "start": at(-40, "10:00"),
            "end": at(-40, "10:30"),
            "participant": [{"actor": {"reference": p}, "status": "accepted"}],
        }
    )
    before = server_requests()

    summary = patient_summary(client, p)

    assert server_requests() - before == 1
    assert summary.name == "Lea Moreau" and summary.birth_date == "1950-02-03"
    assert summary.care_plans[0]["title"] == "Heart failure plan"
    assert summary.care_plans[0]["goals"] == [
        {"description": "Walk 30 minutes a day", "status": "active", "due": day(83)}
    ]
    assert len(summary.care_plans[0]["activities"]) == 1
    assert [t["what"] for t in summary.open_tasks] == ["Fulfil referral: Referral to cardiology service"]
    assert [f["phone"] for f in summary.family] == ["555-0101"]
    assert [a["status"] for a in summary.missed_appointments] == ["noshow"]
    assert summary.problems == []
