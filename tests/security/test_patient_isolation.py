"""Issue 12, item 1: a patient-launch session for patient A goes after patient B's record through every
reference a workflow reads, updates or names. Each attack gets 403, nothing is written, B's resources
keep their versions, and no answer tells whether B's resource exists."""

from __future__ import annotations

import pytest

from fhircare.workflows import run
from tests.security.conftest import login, snapshot
from tests.support.cases import make
from tests.support.clock import at, day


def _attack(browser, sidecar, fhir_server, client, workflow, payload, watched):
    counts, versions = fhir_server.resource_counts(), snapshot(client, watched)
    answer = browser.post(f"{sidecar.url}/api/v1/workflows/{workflow}", json=payload, timeout=30)
    assert answer.status_code == 403, answer.text
    assert answer.json()["issue"][0]["code"] == "forbidden"
    assert fhir_server.resource_counts() == counts
    assert snapshot(client, watched) == versions
    return answer


@pytest.mark.parametrize("form", ["literal", "conditional"])
def test_refer_into_another_patients_care_plan_is_refused(
    sidecar, auth, client, fhir_server, records, uid, form
):
    a, b = records
    plan = b.basics["plan"] if form == "literal" else f"CarePlan?_id={b.basics['plan'].split('/')[1]}"
    payload = {
        "patient": a.patient,
        "service": "diabetes-education",
        "performer": a.basics["org"],
        "requester": a.basics["coordinator"],
        "reason": "diabetes",
        "priority": "routine",
        "due": day(22),
        "care_plan": plan,
    }
    browser = login(sidecar, auth, patient=a.patient)
    _attack(browser, sidecar, fhir_server, client, "refer", payload, [b.basics["plan"]])
    # the same referral into A's own plan goes through
    own = browser.post(
        f"{sidecar.url}/api/v1/workflows/refer", json={**payload, "care_plan": a.basics["plan"]}, timeout=30
    )
    assert own.status_code == 201, own.text


def test_revising_another_patients_care_plan_is_refused(sidecar, auth, client, fhir_server, records, uid):
    a, b = records
    # B's plan as fhircare writes it (a revision must still meet the care plan profile, so a bare plan
    # would be refused for that alone and prove nothing about the patient check)
    plan = next(
        r
        for r in run(
            "care-plan",
            {"patient": b.patient, "author": b.basics["coordinator"], "title": f"Plan of B {uid}"},
            client,
        ).written
        if r.startswith("CarePlan/")
    )
    payload = {
        "patient": a.patient,
        "author": a.basics["coordinator"],
        "care_plan": plan,
        "title": "Mine now",
    }
    _attack(
        login(sidecar, auth, patient=a.patient),
        sidecar,
        fhir_server,
        client,
        "care-plan",
        payload,
        [plan],
    )
    assert client.read_reference(plan)["title"] == f"Plan of B {uid}"


def test_assess_linking_into_another_patients_plan_is_refused(sidecar, auth, client, fhir_server, records):
    a, b = records
    payload = {
        "patient": a.patient,
        "author": a.basics["coordinator"],
        "care_plan": b.basics["plan"],
        "needs": [{"code": "food-insecurity"}],
    }
    _attack(
        login(sidecar, auth, patient=a.patient),
        sidecar,
        fhir_server,
        client,
        "assess",
        payload,
        [b.basics["plan"]],
    )


def test_transition_completing_another_patients_plan_is_refused(sidecar, auth, client, fhir_server, records):
    a, b = records
    payload = {
        "patient": a.patient,
        "coordinator": a.basics["coordinator"],
        "discharge_date": day(3),
        "from_plan": b.basics["plan"],
        "receiving_provider": a.basics["org"],
    }
    _attack(
        login(sidecar, auth, patient=a.patient),
        sidecar,
        fhir_server,
        client,
        "transition",
        payload,
        [b.basics["plan"]],
    )
    assert client.read_reference(b.basics["plan"])["status"] == "active"


@pytest.mark.parametrize("action", ["cancel", "reschedule"])
def test_cancelling_or_rescheduling_another_patients_appointment_is_refused(
    sidecar, auth, client, fhir_server, records, action
):
    """The payload names A as its patient (the only field the check once looked at); the appointment, and
    the patient a reschedule books for, are B's."""
    a, b = records
    payload = {
        "action": action,
        "patient": a.patient,
        "appointment": b.appointment,
        "coordinator": a.basics["coordinator"],
    }
    if action == "reschedule":
        payload["start"] = at(11, "09:00")
    _attack(
        login(sidecar, auth, patient=a.patient),
        sidecar,
        fhir_server,
        client,
        "schedule",
        payload,
        [b.appointment],
    )
    assert client.read_reference(b.appointment)["status"] == "booked"


def test_follow_up_about_another_patient_is_refused(sidecar, auth, client, fhir_server, records):
    a, b = records
    payload = {
        "patient": a.patient,
        "about": b.patient,
        "owner": a.basics["coordinator"],
        "due": day(6),
        "note": "x",
    }
    _attack(
        login(sidecar, auth, patient=a.patient),
        sidecar,
        fhir_server,
        client,
        "follow-up",
        payload,
        [b.patient],
    )


def test_follow_up_about_another_patients_referral_is_refused(sidecar, auth, client, fhir_server, records):
    a, b = records
    payload = {
        "patient": a.patient,
        "about": b.referral,
        "owner": a.basics["coordinator"],
        "due": day(6),
        "note": "x",
    }
    _attack(
        login(sidecar, auth, patient=a.patient),
        sidecar,
        fhir_server,
        client,
        "follow-up",
        payload,
        [b.referral],
    )


def test_a_conditional_reference_is_no_demographic_oracle(sidecar, auth, client, fhir_server, records, uid):
    """Probing ``Patient?family=&birthdate=`` answers the same 403 whether such a patient exists or not."""
    a, b = records
    browser = login(sidecar, auth, patient=a.patient)
    answers = []
    for probe in (
        f"Patient?family=Bravo{uid}&birthdate=1961-02-03",
        "Patient?family=Nobody&birthdate=1900-01-01",
    ):
        payload = {
            "patient": a.patient,
            "about": probe,
            "owner": a.basics["coordinator"],
            "due": day(6),
            "note": "x",
        }
        answers.append(
            _attack(browser, sidecar, fhir_server, client, "follow-up", payload, [b.patient]).json()
        )
    assert answers[0] == answers[1]
    assert f"Bravo{uid}" not in str(answers[0]) and b.patient.split("/")[1] not in str(answers[0])


def test_a_patient_session_may_name_its_own_patient_by_identifier(sidecar, auth, client, records, uid):
    a, _ = records
    identifier = client.read_reference(a.patient)["identifier"][0]
    payload = {
        "patient": f"Patient?identifier={identifier['system']}|{identifier['value']}",
        "about": a.referral,
        "owner": a.basics["coordinator"],
        "due": day(6),
        "note": "Call back",
    }
    answer = login(sidecar, auth, patient=a.patient).post(
        f"{sidecar.url}/api/v1/workflows/follow-up", json=payload, timeout=30
    )
    assert answer.status_code == 201, answer.text
    task = next(r for r in answer.json()["written"] if r.startswith("Task/"))
    assert client.read_reference(task)["for"]["reference"] == a.patient


def test_moving_another_patients_task_is_refused(sidecar, auth, client, fhir_server, records):
    a, b = records
    browser = login(sidecar, auth, patient=a.patient)
    versions = snapshot(client, [b.task])
    answer = browser.post(
        f"{sidecar.url}/api/v1/tasks/{b.task.split('/')[1]}/transition", json={"to": "cancelled"}, timeout=30
    )
    assert answer.status_code == 403
    assert snapshot(client, [b.task]) == versions
    # on a Task that is not there the answer is the same
    missing = browser.post(
        f"{sidecar.url}/api/v1/tasks/no-such-task/transition", json={"to": "cancelled"}, timeout=30
    )
    assert missing.status_code == 403 and missing.json() == answer.json()


def test_reusing_another_patients_request_id_reveals_nothing(
    sidecar, auth, client, fhir_server, records, uid
):
    a, b = records
    request_id = f"their-run-{uid}"
    theirs = {
        "patient": b.patient,
        "about": b.referral,
        "owner": b.basics["coordinator"],
        "due": day(6),
        "note": "x",
        "request_id": request_id,
    }
    written = run("follow-up", theirs, client).written
    mine = {
        "patient": a.patient,
        "about": a.referral,
        "owner": a.basics["coordinator"],
        "due": day(6),
        "note": "x",
        "request_id": request_id,
    }
    answer = _attack(
        login(sidecar, auth, patient=a.patient), sidecar, fhir_server, client, "follow-up", mine, [b.patient]
    )
    assert not any(ref.split("/")[1] in answer.text for ref in written)


def test_views_never_show_an_included_resource_of_another_patient(sidecar, auth, client, records, uid):
    """A's Task whose focus is B (as written before this check existed): A's worklist, summary and pages
    list the Task but never B's name."""
    a, b = records
    bravo = client.read_reference(b.patient)["name"][0]["family"]
    task = make(
        client,
        {
            "resourceType": "Task",
            "status": "requested",
            "intent": "order",
            "description": f"Call about {uid}",
            "for": {"reference": a.patient},
            "focus": {"reference": b.patient},
            "owner": {"reference": a.basics["coordinator"]},
        },
    )
    browser = login(sidecar, auth, patient=a.patient)
    rows = browser.get(f"{sidecar.url}/api/v1/worklist", timeout=30)
    assert rows.status_code == 200
    assert task in [r["task"] for r in rows.json()]
    assert bravo not in rows.text
    page = browser.get(f"{sidecar.url}/", params={"owner": a.basics["coordinator"]}, timeout=30)
    assert page.status_code == 200 and f'data-task="{task}"' in page.text and bravo not in page.text
    summary = browser.get(f"{sidecar.url}/api/v1/patients/{a.patient.split('/')[1]}/summary", timeout=30)
    assert summary.status_code == 200 and bravo not in summary.text
    # and asking for B's summary outright is refused
    assert (
        browser.get(
            f"{sidecar.url}/api/v1/patients/{b.patient.split('/')[1]}/summary", timeout=30
        ).status_code
        == 403
    )
    assert browser.get(f"{sidecar.url}/patients/{b.patient.split('/')[1]}", timeout=30).status_code == 403
