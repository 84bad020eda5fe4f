"""Issue 12, property: for any pair of patients and any workflow payload whose references point into the
other patient's compartment, a patient session never gets a 2xx and the server's resources are unchanged."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fhircare.workflows import run
from tests.security.conftest import Record, login, record_of, snapshot
from tests.support.clock import at, day


def _identifier(client, patient: str) -> str:
    found = client.read_reference(patient)["identifier"][0]
    return f"Patient?identifier={found['system']}|{found['value']}"


def _payloads(a: Record, b: Record, b_identifier: str) -> dict[str, Callable[[str], dict[str, Any]]]:
    """workflow -> (a reference into B's compartment) -> a payload otherwise A's own."""
    coord, org = a.basics["coordinator"], a.basics["org"]
    refer = {
        "patient": a.patient,
        "service": "diabetes-education",
        "performer": org,
        "requester": coord,
        "reason": "diabetes",
        "priority": "routine",
        "due": day(22),
    }
    return {
        "refer.patient": lambda ref: {**refer, "patient": ref},
        "refer.care_plan": lambda ref: {**refer, "care_plan": ref},
        "follow-up.about": lambda ref: {
            "patient": a.patient,
            "about": ref,
            "owner": coord,
            "due": day(6),
            "note": "x",
        },
        "follow-up.patient": lambda ref: {
            "patient": ref,
            "about": a.referral,
            "owner": coord,
            "due": day(6),
            "note": "x",
        },
        "care-plan.care_plan": lambda ref: {
            "patient": a.patient,
            "author": coord,
            "care_plan": ref,
            "title": "t",
        },
        "assess.care_plan": lambda ref: {
            "patient": a.patient,
            "author": coord,
            "care_plan": ref,
            "needs": [{"code": "food-insecurity"}],
        },
        "transition.from_plan": lambda ref: {
            "patient": a.patient,
            "coordinator": coord,
            "discharge_date": day(3),
            "from_plan": ref,
            "receiving_provider": org,
        },
        # the attacker names A as the patient: the one field the check once looked at
        "schedule.cancel": lambda ref: {
            "action": "cancel",
            "patient": a.patient,
            "appointment": ref,
            "coordinator": coord,
        },
        "schedule.reschedule": lambda ref: {
            "action": "reschedule",
            "patient": a.patient,
            "appointment": ref,
            "start": at(11, "09:00"),
            "coordinator": coord,
        },
        "schedule.book.referral": lambda ref: {
            "action": "book",
            "patient": a.patient,
            "referral": ref,
            "start": at(5, "09:00"),
            "minutes": 30,
            "practitioner": coord,
        },
        "educate.recipients": lambda ref: {
            "patient": a.patient,
            "sender": coord,
            "recipients": [ref],
            "topic": "diabetes",
            "content": "x",
        },
    }


# which of B's references fit each field
TARGETS = {
    "refer.patient": ("patient", "identifier"),
    "refer.care_plan": ("plan", "plan?"),
    "follow-up.about": ("patient", "referral", "task", "plan", "identifier"),
    "follow-up.patient": ("patient", "identifier"),
    "care-plan.care_plan": ("plan", "plan?", "written plan"),
    "assess.care_plan": ("plan", "plan?"),
    "transition.from_plan": ("plan", "plan?"),
    "schedule.cancel": ("appointment",),
    "schedule.reschedule": ("appointment",),
    "schedule.book.referral": ("referral",),
    "educate.recipients": ("patient", "relative"),
}


def _target(b: Record, kind: str, identifier: str) -> str:
    return {
        "patient": b.patient,
        "identifier": identifier,
        "plan": b.basics["plan"],
        "plan?": f"CarePlan?_id={b.basics['plan'].split('/')[1]}",
        "referral": b.referral,
        "task": b.task,
        "appointment": b.appointment,
        "relative": b.basics["relative"],
        # a plan as the care-plan workflow writes it: revising it meets the profile, so only the patient
        # check can refuse it (a bare plan is refused by the profile alone)
        "written plan": b.extra["written_plan"],
    }[kind]


@pytest.fixture()
def pool(client, uid):
    """Three patients with records, and a patient session for each, made once per test."""
    made: dict[str, Any] = {}

    def get(sidecar, auth):
        if not made:
            records = [record_of(client, f"{uid}{i}", f"Pool{i}{uid}") for i in range(3)]
            for r in records:
                written = run(
                    "care-plan",
                    {"patient": r.patient, "author": r.basics["coordinator"], "title": "t"},
                    client,
                ).written
                r.extra["written_plan"] = next(w for w in written if w.startswith("CarePlan/"))
            made["records"] = records
            made["identifiers"] = [_identifier(client, r.patient) for r in records]
            made["sessions"] = [login(sidecar, auth, patient=r.patient) for r in records]
        return made["records"], made["sessions"], made["identifiers"]

    return get


ATTACKS = st.sampled_from(sorted(TARGETS)).flatmap(
    lambda field: st.tuples(st.just(field), st.sampled_from(TARGETS[field]))
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pair=st.permutations(range(3)).map(lambda p: (p[0], p[1])), attack=ATTACKS)
def test_a_patient_session_never_writes_into_another_patients_compartment(
    pool, sidecar, auth, client, fhir_server, pair, attack
):
    records, sessions, identifiers = pool(sidecar, auth)
    a, b = records[pair[0]], records[pair[1]]
    field, kind = attack
    payload = _payloads(a, b, identifiers[pair[1]])[field](_target(b, kind, identifiers[pair[1]]))
    watched = [b.patient, b.basics["plan"], b.extra["written_plan"], b.appointment, b.referral, b.task]
    counts, versions = fhir_server.resource_counts(), snapshot(client, watched)
    workflow = field.split(".")[0]
    answer = sessions[pair[0]].post(f"{sidecar.url}/api/v1/workflows/{workflow}", json=payload, timeout=30)
    assert not 200 <= answer.status_code < 300, (field, kind, answer.text)
    assert answer.status_code == 403, (field, kind, answer.text)
    assert fhir_server.resource_counts() == counts
    assert snapshot(client, watched) == versions
