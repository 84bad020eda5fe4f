"""One coordinator's week, through the CLI only, then the server's final state as she would check it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support.cases import make
from tests.support.clock import at, day

FHIRCARE = str(Path(sys.executable).with_name("fhircare"))


def test_a_coordinators_week(fhir_server, client, uid):
    base = fhir_server.base_url

    def cli(workflow: str, payload: dict) -> list[str]:
        answer = subprocess.run(
            [FHIRCARE, "--base", base, "run", workflow, "-"],
            input=json.dumps(payload),
            capture_output=True,
            text=True,
        )
        assert answer.returncode == 0, f"{workflow}: {answer.stderr}"
        printed = json.loads(answer.stdout)
        assert printed["workflow"] == workflow and printed["written"][-1].startswith("Provenance/")
        return printed["written"]

    def first(refs: list[str], rtype: str) -> str:
        return next(r for r in refs if r.startswith(rtype + "/"))

    me = make(client, {"resourceType": "Practitioner", "name": [{"family": "Rivera", "given": ["Jordan"]}]})
    pcp = make(client, {"resourceType": "Practitioner", "name": [{"family": "Lee"}]})
    program = make(client, {"resourceType": "Organization", "name": "Diabetes Education Program"})
    rides = make(client, {"resourceType": "Organization", "name": "Reliable Rides"})
    payer = make(client, {"resourceType": "Organization", "name": "Blue Lake Health Plan"})
    home_health = make(client, {"resourceType": "Organization", "name": "Home Health"})
    mrn = {"system": "urn:oid:2.16.840.1.113883.19.5", "value": f"MRN-{uid}"}

    # Monday: enrol Ana, assess her, write the plan, refer her
    enrolled = cli(
        "enroll",
        {
            "patient": {
                "identifier": mrn,
                "name": {"given": ["Ana"], "family": "Silva"},
                "birthDate": "1956-04-12",
                "gender": "female",
            },
            "coordinator": me,
            "team": [{"member": pcp, "role": "primary-care-physician"}],
            "family": [
                {"name": {"given": ["Rui"], "family": "Silva"}, "relationship": "SON", "phone": "555-0101"}
            ],
            "plan_title": "Diabetes plan",
        },
    )
    ana, son, plan = first(enrolled, "Patient"), first(enrolled, "RelatedPerson"), first(enrolled, "CarePlan")
    conditional_ana = f"Patient?identifier={mrn['system']}|{mrn['value']}"
    cli(
        "assess",
        {
            "patient": conditional_ana,
            "author": me,
            "care_plan": plan,
            "needs": [{"code": "diabetes"}],
            "goals": [{"description": "HbA1c below 7.5%", "due": day(93)}],
            "answers": [{"question": "Lives alone?", "answer": True}],
        },
    )
    cli(
        "care-plan",
        {
            "patient": ana,
            "author": me,
            "care_plan": plan,
            "activities": [{"detail": {"description": "Daily glucose log", "status": "in-progress"}}],
        },
    )
    referred = cli(
        "refer",
        {
            "patient": ana,
            "service": "diabetes-education",
            "performer": program,
            "requester": me,
            "reason": "diabetes",
            "priority": "urgent",
            "due": day(17),
            "care_plan": plan,
        },
    )
    request, referral_task = first(referred, "ServiceRequest"), first(referred, "Task")

    # Tuesday: book, ride, coverage, prior authorization, a follow-up for Friday
    booked = cli(
        "schedule",
        {
            "action": "book",
            "patient": ana,
            "referral": request,
            "start": at(4, "14:00"),
            "minutes": 45,
            "practitioner": pcp,
            "family": [son],
            "coordinator": me,
        },
    )
    appointment = first(booked, "Appointment")
    cli(
        "transport",
        {
            "patient": ana,
            "appointment": appointment,
            "vendor": rides,
            "requester": me,
            "when": at(4, "13:15"),
            "pickup": "Home",
        },
    )
    covered = cli(
        "coverage-check",
        {
            "patient": ana,
            "payor": payer,
            "subscriber_id": f"BL-{uid}",
            "service": "diabetes-education",
            "date": day(4),
            "relationship": "self",
            "requester": me,
        },
    )
    cli(
        "prior-auth",
        {
            "patient": ana,
            "coverage": first(covered, "Coverage"),
            "payer": payer,
            "provider": me,
            "service_request": request,
            "service": "diabetes-education",
        },
    )
    cli(
        "follow-up",
        {
            "patient": ana,
            "about": request,
            "owner": me,
            "due": day(6),
            "note": "Did the program call Ana?",
        },
    )

    # Wednesday: the program accepts, starts and completes the referral
    for status in ("accepted", "in-progress", "completed"):
        cli("task", {"task": referral_task, "to": status, "actor": me})

    # Thursday: Ana missed the appointment; mark the no-show, then rebook the next one
    cli(
        "schedule",
        {"action": "noshow", "appointment": appointment, "reason": "Did not attend", "coordinator": me},
    )
    second = cli(
        "schedule",
        {
            "action": "book",
            "patient": ana,
            "referral": request,
            "start": at(11, "14:00"),
            "minutes": 45,
            "practitioner": pcp,
            "coordinator": me,
        },
    )
    moved = cli(
        "schedule",
        {
            "action": "reschedule",
            "appointment": first(second, "Appointment"),
            "start": at(12, "09:00"),
            "reason": "Morning suits her",
            "coordinator": me,
        },
    )

    # Friday: Ana is discharged after a short stay; teach her son
    discharged = cli(
        "transition",
        {
            "patient": ana,
            "coordinator": me,
            "discharge_date": day(7),
            "from_plan": plan,
            "receiving_provider": pcp,
            "services": [{"service": "home-health-referral", "performer": home_health, "due": day(10)}],
        },
    )
    cli(
        "educate",
        {
            "patient": ana,
            "sender": me,
            "recipients": [son],
            "topic": "diabetes",
            "content": "Signs of low blood sugar and what to do",
        },
    )

    # the week as the server holds it
    def search(rtype: str, **params: str) -> list[dict]:
        return list(client.search(rtype, params))

    assert len(search("Patient", identifier=f"{mrn['system']}|{mrn['value']}")) == 1
    assert client.read_reference(request)["status"] == "completed"
    assert client.read_reference(referral_task)["status"] == "completed"
    assert client.read_reference(appointment)["status"] == "noshow"
    assert client.read_reference(first(second, "Appointment"))["status"] == "cancelled"
    new_appointment = first(moved, "Appointment")
    assert client.read_reference(new_appointment)["start"] == at(12, "09:00")
    assert client.read_reference(new_appointment)["status"] == "booked"
    assert client.read_reference(plan)["status"] == "completed"  # replaced by the transition plan
    transition_plan = client.read_reference(first(discharged, "CarePlan"))
    assert transition_plan["replaces"][0]["reference"] == plan
    follow_ups = [t for t in search("Task", patient=ana, owner=me) if t.get("status") == "requested"]
    assert sorted(t["description"] for t in follow_ups) == ["Follow up", "Post-discharge follow-up call"]
    assert len(search("Appointment", patient=ana)) == 3
    assert len(search("Claim", patient=ana)) == 1
    assert len(search("Coverage", beneficiary=ana)) == 1
    assert len(search("Communication", patient=ana)) == 2  # hand-off and education
    provenances = search("Provenance", entity=ana)
    workflows = sorted(p["activity"]["text"] for p in provenances)
    assert workflows.count("task") == 3 and workflows.count("schedule") == 4 and len(provenances) == 17
    history = subprocess.run(
        [FHIRCARE, "--base", base, "history", ana, "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert len(json.loads(history.stdout)) == 17
