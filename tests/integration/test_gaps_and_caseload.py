"""Each care-gap rule with a case that fires and one that does not; caseload figures for a crafted caseload."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fhircare.errors import ConfigurationError
from fhircare.fhir import FhirClient
from fhircare.settings import Settings
from fhircare.views.caseload import caseload
from fhircare.views.gap_rules import load_rules
from fhircare.views.gaps import find_gaps
from tests.support.cases import make
from tests.support.clock import at, date_at, day, today

FHIRCARE = str(Path(sys.executable).with_name("fhircare"))
TODAY = today()
RECENT = at(-1, "09:00")
OLD = at(-29, "09:00")


def _patient(client: FhirClient) -> str:
    return make(client, {"resourceType": "Patient", "name": [{"family": "Gap"}]})


def _request(client: FhirClient, patient: str, authored: str, category: str = "3457005") -> str:
    return make(
        client,
        {
            "resourceType": "ServiceRequest",
            "status": "active",
            "intent": "order",
            "category": [{"coding": [{"system": "http://snomed.info/sct", "code": category}]}],
            "subject": {"reference": patient},
            "authoredOn": authored,
        },
    )


def _task(client: FhirClient, patient: str, **fields: object) -> str:
    body = {
        "resourceType": "Task",
        "status": "requested",
        "intent": "order",
        "for": {"reference": patient},
        **fields,
    }
    return make(client, body)


def _rules_hit(client: FhirClient, patient: str) -> set[str]:
    return {g.rule for g in find_gaps(client, patient=patient, today=TODAY)}


FULFILL = {"coding": [{"system": "http://hl7.org/fhir/CodeSystem/task-code", "code": "fulfill"}]}
APPROVE = {"coding": [{"system": "http://hl7.org/fhir/CodeSystem/task-code", "code": "approve"}]}


def test_referral_not_accepted_fires_after_5_days_and_not_once_accepted(client):
    old, accepted, fresh = _patient(client), _patient(client), _patient(client)
    _task(client, old, code=FULFILL, focus={"reference": _request(client, old, OLD)}, authoredOn=OLD)
    _task(
        client,
        accepted,
        code=FULFILL,
        focus={"reference": _request(client, accepted, OLD)},
        authoredOn=OLD,
        status="accepted",
    )
    _task(
        client, fresh, code=FULFILL, focus={"reference": _request(client, fresh, RECENT)}, authoredOn=RECENT
    )
    assert "referral-not-accepted" in _rules_hit(client, old)
    assert "referral-not-accepted" not in _rules_hit(client, accepted)
    assert "referral-not-accepted" not in _rules_hit(client, fresh)


def test_request_not_booked_fires_without_an_appointment_and_not_with_one(client):
    bare, booked = _patient(client), _patient(client)
    _request(client, bare, OLD)
    request = _request(client, booked, OLD)
    make(
        client,
        {
            "resourceType": "Appointment",
            "status": "booked",
            "basedOn": [{"reference": request}],
            "participant": [{"actor": {"reference": booked}, "status": "accepted"}],
        },
    )
    assert "request-not-booked" in _rules_hit(client, bare)
    assert "request-not-booked" not in _rules_hit(client, booked)


def test_noshow_without_follow_up_fires_and_a_follow_up_task_closes_it(client):
    patient = _patient(client)
    appointment = make(
        client,
        {
            "resourceType": "Appointment",
            "status": "noshow",
            "participant": [{"actor": {"reference": patient}, "status": "accepted"}],
        },
    )
    assert "noshow-without-follow-up" in _rules_hit(client, patient)
    _task(client, patient, basedOn=[{"reference": appointment}], restriction={"period": {"end": day(5)}})
    assert "noshow-without-follow-up" not in _rules_hit(client, patient)


def test_discharge_without_follow_up_fires_and_not_with_one(client):
    patient = _patient(client)
    discharge = {"coding": [{"system": "http://snomed.info/sct", "code": "736372004"}]}
    plan = make(
        client,
        {
            "resourceType": "CarePlan",
            "status": "active",
            "intent": "plan",
            "category": [discharge],
            "subject": {"reference": patient},
        },
    )
    assert "discharge-without-follow-up" in _rules_hit(client, patient)
    _task(client, patient, focus={"reference": plan}, restriction={"period": {"end": day(3)}})
    assert "discharge-without-follow-up" not in _rules_hit(client, patient)


def test_plan_without_coverage_fires_when_coverage_is_missing_or_expired(client):
    none, expired, covered = _patient(client), _patient(client), _patient(client)
    payer = make(client, {"resourceType": "Organization", "name": "Payer"})
    for patient in (none, expired, covered):
        make(
            client,
            {
                "resourceType": "CarePlan",
                "status": "active",
                "intent": "plan",
                "subject": {"reference": patient},
            },
        )
    make(
        client,
        {
            "resourceType": "Coverage",
            "status": "active",
            "beneficiary": {"reference": expired},
            "payor": [{"reference": payer}],
            "period": {"end": day(-30)},
        },
    )
    make(
        client,
        {
            "resourceType": "Coverage",
            "status": "active",
            "beneficiary": {"reference": covered},
            "payor": [{"reference": payer}],
            "period": {"end": day(184)},
        },
    )
    assert "plan-without-coverage" in _rules_hit(client, none)
    assert "plan-without-coverage" in _rules_hit(client, expired)
    assert "plan-without-coverage" not in _rules_hit(client, covered)


def test_prior_auth_denied_fires_while_the_referral_is_open_and_a_follow_up_closes_it(client):
    def decided_for(patient: str, request: str, decision: str = "denied") -> str:
        return _task(
            client,
            patient,
            status="completed",
            code=APPROVE,
            basedOn=[{"reference": request}],
            businessStatus={"coding": [{"system": "urn:fhircare:prior-auth-decision", "code": decision}]},
        )

    open_referral, closed_referral, approved = _patient(client), _patient(client), _patient(client)
    denial = decided_for(open_referral, _request(client, open_referral, RECENT))
    closed = _request(client, closed_referral, RECENT)
    client.update({**client.read_reference(closed), "status": "revoked"})
    decided_for(closed_referral, closed)
    decided_for(approved, _request(client, approved, RECENT), decision="approved")
    assert "prior-auth-denied" in _rules_hit(client, open_referral)
    assert "prior-auth-denied" not in _rules_hit(client, closed_referral)
    assert "prior-auth-denied" not in _rules_hit(client, approved)
    _task(client, open_referral, focus={"reference": denial}, restriction={"period": {"end": day(5)}})
    assert "prior-auth-denied" not in _rules_hit(client, open_referral)


def test_prior_auth_without_a_decision_fires_after_5_days_until_someone_follows_up(client):
    waiting, fresh, decided = _patient(client), _patient(client), _patient(client)
    asked = _task(client, waiting, code=APPROVE, authoredOn=OLD)
    _task(client, fresh, code=APPROVE, authoredOn=RECENT)
    _task(client, decided, code=APPROVE, authoredOn=OLD, status="completed")
    assert "prior-auth-no-decision" in _rules_hit(client, waiting)
    assert "prior-auth-no-decision" not in _rules_hit(client, fresh)
    assert "prior-auth-no-decision" not in _rules_hit(client, decided)
    _task(client, waiting, focus={"reference": asked}, restriction={"period": {"end": day(2)}})
    assert "prior-auth-no-decision" not in _rules_hit(client, waiting)


def test_overdue_task_fires_for_open_past_due_only(client):
    late, done, later = _patient(client), _patient(client), _patient(client)
    _task(client, late, restriction={"period": {"end": at(-10, "23:59:59")}})
    _task(client, done, status="completed", restriction={"period": {"end": at(-10, "23:59:59")}})
    _task(client, later, restriction={"period": {"end": at(20, "23:59:59")}})
    assert "overdue-task" in _rules_hit(client, late)
    assert "overdue-task" not in _rules_hit(client, done)
    assert "overdue-task" not in _rules_hit(client, later)


def test_goal_past_target_fires_unless_achieved(client):
    missed, achieved = _patient(client), _patient(client)
    make(
        client,
        {
            "resourceType": "Goal",
            "lifecycleStatus": "active",
            "description": {"text": "Walk"},
            "subject": {"reference": missed},
            "target": [{"dueDate": day(-29)}],
        },
    )
    make(
        client,
        {
            "resourceType": "Goal",
            "lifecycleStatus": "active",
            "achievementStatus": {
                "coding": [
                    {"system": "http://terminology.hl7.org/CodeSystem/goal-achievement", "code": "achieved"}
                ]
            },
            "description": {"text": "Walk"},
            "subject": {"reference": achieved},
            "target": [{"dueDate": day(-29)}],
        },
    )
    assert "goal-past-target" in _rules_hit(client, missed)
    assert "goal-past-target" not in _rules_hit(client, achieved)


def test_plan_not_revised_fires_after_90_days_only(client):
    patient = _patient(client)
    make(
        client,
        {"resourceType": "CarePlan", "status": "active", "intent": "plan", "subject": {"reference": patient}},
    )
    assert "plan-not-revised" not in _rules_hit(client, patient)  # written today
    hits = {g.rule for g in find_gaps(client, patient=patient, today=date_at(519))}
    assert "plan-not-revised" in hits


def test_gaps_for_a_patient_take_one_request(client, server_requests):
    patient = _patient(client)
    before = server_requests()
    find_gaps(client, patient=patient, today=TODAY)
    assert server_requests() - before == 1


def test_a_rule_overlay_overrides_by_id_and_a_broken_one_is_refused(tmp_path):
    (tmp_path / "gaps.yaml").write_text(
        "rules:\n  - id: overdue-task\n    title: Late\n    severity: high\n    next_workflow: task\n    resource: Task\n    where: \"status = 'requested'\"\n"
    )
    rules = {r.id: r for r in load_rules(Settings(rules_dir=tmp_path))}
    assert rules["overdue-task"].title == "Late" and "goal-past-target" in rules
    (tmp_path / "gaps.yaml").write_text("rules:\n  - id: broken\n    title: x\n")
    with pytest.raises(ConfigurationError, match=r"gaps.yaml: \$.rules\[0\]"):
        load_rules(Settings(rules_dir=tmp_path))


def test_caseload_figures_for_a_crafted_caseload(client, uid):
    coordinator = make(
        client, {"resourceType": "Practitioner", "name": [{"family": f"Case{uid}", "given": ["Kim"]}]}
    )
    p1, p2, p3 = (_patient(client) for _ in range(3))
    program = make(client, {"resourceType": "Organization", "name": "Program"})
    referral = {"code": FULFILL, "requester": {"reference": coordinator}, "owner": {"reference": program}}
    # three referrals opened in June: closed after 4 and 10 days, one still open
    _task(
        client,
        p1,
        focus={"reference": _request(client, p1, OLD)},
        authoredOn=day(-29),
        status="completed",
        executionPeriod={"end": day(-25)},
        **referral,
    )
    _task(
        client,
        p2,
        focus={"reference": _request(client, p2, OLD)},
        authoredOn=day(-20),
        status="rejected",
        executionPeriod={"end": day(-10)},
        **referral,
    )
    _task(client, p3, focus={"reference": _request(client, p3, OLD)}, authoredOn=day(-15), **referral)
    # the coordinator's own tasks: two open (one overdue), one done
    _task(client, p1, owner={"reference": coordinator}, restriction={"period": {"end": day(-10)}})
    _task(client, p2, owner={"reference": coordinator}, restriction={"period": {"end": day(20)}})
    _task(client, p2, owner={"reference": coordinator}, status="completed")

    rows = {r.coordinator: r for r in caseload(client, since=date_at(-29), until=TODAY, today=TODAY)}

    row = rows[coordinator]
    assert row.name == "Kim " + f"Case{uid}"
    assert (row.patients, row.open_tasks, row.overdue_tasks) == (3, 2, 1)
    assert (row.referrals_opened, row.referrals_closed, row.median_days_to_close) == (3, 2, 7.0)


def test_gaps_and_caseload_cli_print_json(fhir_server, client):
    patient = _patient(client)
    _task(client, patient, restriction={"period": {"end": "2020-01-01"}})
    gaps = subprocess.run(
        [FHIRCARE, "--base", fhir_server.base_url, "gaps", "--patient", patient, "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert [g["rule"] for g in json.loads(gaps.stdout)] == ["overdue-task"]
    table = subprocess.run(
        [FHIRCARE, "--base", fhir_server.base_url, "caseload", "--format", "csv"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert table.stdout.splitlines()[0].startswith("coordinator,name,patients")


def _roles_world(client: FhirClient, uid: str) -> dict[str, str]:
    """A coordinator whose Tasks are owned sometimes by her, sometimes by her PractitionerRole; a role
    with no practitioner, one with nothing at all, a care team and an organization owning Tasks."""
    w = {
        "person": make(
            client, {"resourceType": "Practitioner", "name": [{"family": f"Fold{uid}", "given": ["Lee"]}]}
        ),
        "hub": make(client, {"resourceType": "Organization", "name": f"Hub{uid}"}),
        "team": make(client, {"resourceType": "CareTeam", "status": "active", "name": f"Team{uid}"}),
    }
    w["role"] = make(
        client,
        {
            "resourceType": "PractitionerRole",
            "practitioner": {"reference": w["person"]},
            "organization": {"reference": w["hub"]},
            "code": [{"text": "Care coordinator"}],
        },
    )
    w["lone"] = make(
        client,
        {
            "resourceType": "PractitionerRole",
            "organization": {"reference": w["hub"]},
            "code": [{"text": "Intake"}],
        },
    )
    w["bare"] = make(client, {"resourceType": "PractitionerRole", "active": True})
    p1, p2, p3 = (_patient(client) for _ in range(3))
    late, later = {"period": {"end": day(-10)}}, {"period": {"end": day(20)}}
    # the person's own task and her role's two: three patients, three open, two overdue
    _task(client, p1, owner={"reference": w["person"]}, restriction=late)
    _task(client, p2, owner={"reference": w["role"]}, restriction=later)
    _task(client, p3, owner={"reference": w["role"]}, restriction=late)
    # referrals to the team: one requested by her role (closed after 4 days), one by her (open)
    referral = {"code": FULFILL, "owner": {"reference": w["team"]}}
    _task(
        client,
        p1,
        focus={"reference": _request(client, p1, OLD)},
        requester={"reference": w["role"]},
        authoredOn=day(-20),
        status="completed",
        executionPeriod={"end": day(-16)},
        **referral,
    )
    _task(
        client,
        p2,
        focus={"reference": _request(client, p2, OLD)},
        requester={"reference": w["person"]},
        authoredOn=day(-25),
        **referral,
    )
    _task(client, p3, owner={"reference": w["lone"]})
    _task(client, p1, owner={"reference": w["bare"]})
    _task(client, p2, owner={"reference": w["hub"]}, restriction=late)
    return w


def test_a_role_counts_on_its_practitioners_row_and_other_owners_have_named_rows(client, uid):
    w = _roles_world(client, uid)
    period = {"since": date_at(-29), "until": TODAY, "today": TODAY}
    paged = caseload(client, **period)
    # the same rows through Bulk Data $export (paging again on a server that offers none)
    assert [r.as_dict() for r in caseload(client, bulk=True, **period)] == [r.as_dict() for r in paged]
    rows = {r.coordinator: r for r in paged}

    assert w["role"] not in rows  # folded into the person's row
    person = rows[w["person"]]
    assert person.name == f"Lee Fold{uid}"
    assert (person.patients, person.open_tasks, person.overdue_tasks) == (3, 3, 2)
    assert (person.referrals_opened, person.referrals_closed, person.median_days_to_close) == (2, 1, 4.0)
    # a role with no practitioner: its own row, named by its code at its organization
    assert rows[w["lone"]].name == f"Intake at Hub{uid}"
    assert (rows[w["lone"]].patients, rows[w["lone"]].open_tasks) == (1, 1)
    assert rows[w["bare"]].name == w["bare"]  # nothing better than its reference
    # a team's and an organization's queues: own rows, named
    assert (rows[w["team"]].name, rows[w["team"]].open_tasks, rows[w["team"]].patients) == (
        f"Team{uid}",
        1,
        2,
    )
    assert (rows[w["hub"]].name, rows[w["hub"]].open_tasks, rows[w["hub"]].overdue_tasks) == (
        f"Hub{uid}",
        1,
        1,
    )
    # people first, then teams, then organizations
    order = [r.coordinator for r in paged]
    assert order.index(w["person"]) < order.index(w["team"]) < order.index(w["hub"])


def test_the_caseload_cli_prints_a_roles_tasks_on_the_persons_row(fhir_server, client, uid):
    w = _roles_world(client, uid)
    for bulk in ([], ["--bulk"]):
        printed = subprocess.run(
            [FHIRCARE, "--base", fhir_server.base_url, "caseload", "--format", "json", *bulk],
            capture_output=True,
            text=True,
            check=True,
        )
        rows = {r["coordinator"]: r for r in json.loads(printed.stdout)}
        assert w["role"] not in rows
        assert (rows[w["person"]]["name"], rows[w["person"]]["open_tasks"]) == (f"Lee Fold{uid}", 3)
        assert rows[w["lone"]]["name"] == f"Intake at Hub{uid}"
