"""Issue 22: the console's new pages make the checks every sidecar route makes: a patient-launch session
sees only its own patient (no patient search, no other patient's task), a token without the scopes a page
shows gets 403 on it."""

from __future__ import annotations

from tests.security import conftest as attack
from tests.security.conftest import login

# the attack suite's fixtures: a SMART authorization server, a sidecar on it, patients A and B
auth, smart_sidecar, sidecar, records = attack.auth, attack.smart_sidecar, attack.sidecar, attack.records


def test_a_patient_session_cannot_search_patients_and_is_offered_no_search(sidecar, auth, records):
    a, b = records
    browser = login(sidecar, auth, patient=a.patient)
    answer = browser.get(f"{sidecar.url}/patients", params={"name": "Bravo"}, timeout=30)
    assert answer.status_code == 403 and "Bravo" not in answer.text
    own = browser.get(f"{sidecar.url}/patients/{a.patient.split('/')[1]}", timeout=30)
    assert own.status_code == 200 and 'role="search"' not in own.text


def test_a_coordinator_without_patient_read_cannot_search(sidecar, auth, records, uid):
    browser = login(sidecar, auth, scope="launch openid user/Task.rs")
    answer = browser.get(f"{sidecar.url}/patients", params={"name": "Alpha"}, timeout=30)
    assert answer.status_code == 403 and "Alpha" not in answer.text
    allowed = login(sidecar, auth, scope="launch openid user/Patient.rs user/Practitioner.rs")
    found = allowed.get(f"{sidecar.url}/patients", params={"name": f"Alpha{uid}"}, timeout=30)
    assert found.status_code == 200 and records[0].patient in found.text


def test_a_patient_session_cannot_read_or_note_another_patients_task(sidecar, auth, client, records):
    from tests.security.conftest import csrf_of, snapshot

    a, b = records
    browser = login(sidecar, auth, patient=a.patient)
    own, other = a.patient.split("/")[1], b.task.split("/")[1]
    assert browser.get(f"{sidecar.url}/patients/{own}/tasks/{other}", timeout=30).status_code == 404
    assert (
        browser.get(f"{sidecar.url}/patients/{b.patient.split('/')[1]}/tasks/{other}", timeout=30).status_code
        == 403
    )
    versions = snapshot(client, [b.task])
    token = csrf_of(browser, sidecar, f"/patients/{own}")
    answer = browser.post(
        f"{sidecar.url}/patients/{own}/tasks/{other}/note", data={"csrf": token, "note": "hello"}, timeout=30
    )
    assert answer.status_code == 403
    assert snapshot(client, [b.task]) == versions
    mine = browser.get(f"{sidecar.url}/patients/{own}/tasks/{a.task.split('/')[1]}", timeout=30)
    assert mine.status_code == 200 and "Notes" in mine.text


def test_a_patient_session_cannot_open_or_send_the_new_patient_form(
    sidecar, auth, client, records, fhir_server
):
    from tests.security.conftest import csrf_of

    a, _ = records
    browser = login(sidecar, auth, patient=a.patient)
    assert browser.get(f"{sidecar.url}/patients/new", timeout=30).status_code == 403
    token = csrf_of(browser, sidecar, f"/patients/{a.patient.split('/')[1]}")
    before = fhir_server.resource_counts()
    answer = browser.post(
        f"{sidecar.url}/patients/new",
        data={"csrf": token, "patient.name.family": "Intruder", "patient.identifier.value": "X1"},
        timeout=30,
    )
    assert answer.status_code == 403
    assert fhir_server.resource_counts() == before
