"""Issue 22, item 5: a form's request id is fixed when it is first rendered for its intent and consumed
when its submission succeeds. Resubmitting it (Back then resubmit, a double submit) is one action; a
second visit to the form is a new one."""

from __future__ import annotations

import pytest
import requests

from fhircare.errors import Conflict
from fhircare.workflows import run
from tests.support.cases import basics, educate_case, referral_payload
from tests.support.clock import day
from tests.support.console import hidden


def follow_ups(client, referral: str, uid: str) -> list[dict]:
    return [t for t in client.search("Task", {"focus": referral}) if f"Call back {uid}" in str(t.get("note"))]


def test_a_resubmit_is_one_follow_up_and_a_second_visit_is_a_new_one(dev, client, uid):
    b = basics(client, uid)
    referral = run("refer", referral_payload(b, uid), client).written[0]
    pid = b["patient"].split("/")[1]
    form_url = f"{dev.url}/patients/{pid}/do/follow-up"
    browser = requests.Session()
    first = browser.get(form_url, params={"about": referral}).text
    data = {"about": referral, "owner": b["coordinator"], "due": day(3), "note": f"Call back {uid}"}
    sent = browser.post(form_url, data={**hidden(first), **data}, allow_redirects=False)
    assert sent.status_code == 303

    # Back then resubmit, or a double submit: the form sent again with the id it was sent with
    again = browser.post(form_url, data={**hidden(first), **data})
    assert again.status_code == 200 and "(already done)" in again.text
    assert len(follow_ups(client, referral, uid)) == 1

    # the id was consumed by the success: a second visit is a new action, without a warning
    second = browser.get(form_url, params={"about": referral}).text
    assert hidden(second)["request_id"] != hidden(first)["request_id"]
    assert "You have done this already" not in second
    assert browser.post(form_url, data={**hidden(second), **data}, allow_redirects=False).status_code == 303
    assert len(follow_ups(client, referral, uid)) == 2
    fresh = browser.get(form_url, params={"about": referral, "new": "1"}).text
    assert hidden(fresh)["request_id"] not in (hidden(first)["request_id"], hidden(second)["request_id"])


def test_a_refused_form_keeps_its_request_id(dev, client, uid):
    b = basics(client, uid)
    pid = b["patient"].split("/")[1]
    form_url = f"{dev.url}/patients/{pid}/do/follow-up"
    browser = requests.Session()
    first = browser.get(form_url).text
    refused = browser.post(form_url, data={**hidden(first), "note": "x" * 5000})
    assert refused.status_code == 422
    assert hidden(refused.text)["request_id"] == hidden(first)["request_id"]
    assert hidden(browser.get(form_url).text)["request_id"] == hidden(first)["request_id"]


# ---- a request id names one action: the same workflow with the same payload ---------------------------


def test_a_request_id_answers_only_for_the_same_payload_else_409_and_nothing_written(
    client, fhir_server, server_requests, reference_batch, uid
):
    """The library: the same id with the same payload is the earlier run (repeated, nothing written);
    with another patient's payload, or another workflow, it is refused at ``$.request_id``, nothing
    written. A resend costs what it cost before (one transaction whose conditional creates all match);
    the refusal costs no more than B's own run would up to its transaction."""
    a, b = basics(client, uid), basics(client, uid + "b")
    payload = referral_payload(a, uid, request_id=f"once-{uid}")
    first = run("refer", payload, client)
    before = server_requests()
    again = run("refer", payload, client)
    resend = server_requests() - before
    assert again.repeated and again.written == first.written

    counts = fhir_server.resource_counts()
    before = server_requests()
    with pytest.raises(Conflict) as refused:
        run("refer", referral_payload(b, uid + "b", request_id=f"once-{uid}"), client)
    refusal = server_requests() - before
    assert refused.value.status == 409
    assert [i.expression for i in refused.value.issues] == [("$.request_id",)]
    assert "used for another action; nothing was written" in refused.value.message
    task = next(r for r in first.written if r.startswith("Task/"))
    with pytest.raises(Conflict):  # another workflow under the same id: refused where its read batch finds it
        run(
            "task",
            {"task": task, "to": "accepted", "actor": a["coordinator"], "request_id": f"once-{uid}"},
            client,
        )
    assert fhir_server.resource_counts() == counts
    assert client.read_reference(task)["status"] == "requested"
    assert not list(client.search("Task", {"patient": b["patient"]}))
    print(f"request counts: resend={resend} refusal={refusal}")
    # the transaction answer carries the earlier Provenance (both servers): no read to tell the refusal;
    # B's references, new to this client, are checked first where the server does not resolve them
    assert refusal == resend + reference_batch


def test_a_reused_id_whose_payload_adds_an_entry_leaves_nothing_written(client, fhir_server, uid):
    """Another payload under a used id that plans an entry the earlier run had not (education with a
    leaflet after one without): the transaction's other conditional creates match the earlier run's,
    the leaflet it did create is deleted again, and the answer is the same 409."""
    payload = {**educate_case(client, uid).payload, "request_id": f"edu-{uid}"}
    without = {k: v for k, v in payload.items() if k != "material"}
    first = run("educate", without, client)
    assert not any(r.startswith("DocumentReference/") for r in first.written)
    counts = fhir_server.resource_counts()
    with pytest.raises(Conflict) as refused:
        run("educate", payload, client)
    assert [i.expression for i in refused.value.issues] == [("$.request_id",)]
    assert fhir_server.resource_counts() == counts
    assert not list(client.search("DocumentReference", {"patient": payload["patient"]}))
    assert run("educate", without, client).written == first.written  # the same action is still a repeat


def test_the_api_refuses_a_request_id_reused_for_another_payload_with_409(dev, client, fhir_server, uid):
    a, b = basics(client, uid), basics(client, uid + "b")
    url = f"{dev.url}/api/v1/workflows/refer"
    first = requests.post(url, json=referral_payload(a, uid, request_id=f"api-{uid}"), timeout=30)
    assert first.status_code == 201
    counts = fhir_server.resource_counts()
    reused = requests.post(url, json=referral_payload(b, uid + "b", request_id=f"api-{uid}"), timeout=30)
    assert reused.status_code == 409, reused.text
    issues = reused.json()["issue"]
    assert any("$.request_id" in i.get("expression", []) for i in issues)
    assert fhir_server.resource_counts() == counts


def test_a_consumed_id_posted_with_another_patients_form_is_a_red_banner_and_the_form_keeps_its_own_id(
    dev, client, fhir_server, uid
):
    a, b = basics(client, uid), basics(client, uid + "b")
    a_id, b_id = a["patient"].split("/")[1], b["patient"].split("/")[1]
    browser = requests.Session()
    form_a = hidden(browser.get(f"{dev.url}/patients/{a_id}/do/refer", timeout=30).text)
    data_a = referral_payload(a, uid)
    sent = browser.post(
        f"{dev.url}/patients/{a_id}/do/refer", data={**form_a, **data_a}, allow_redirects=False, timeout=30
    )
    assert sent.status_code == 303
    form_b = hidden(browser.get(f"{dev.url}/patients/{b_id}/do/refer", timeout=30).text)
    counts = fhir_server.resource_counts()
    data_b = referral_payload(b, uid + "b")
    replayed = browser.post(
        f"{dev.url}/patients/{b_id}/do/refer",
        data={**form_b, **data_b, "request_id": form_a["request_id"]},
        timeout=30,
    )
    assert replayed.status_code == 422 and "already done" not in replayed.text
    banner = replayed.text.split('class="problem" role="alert"')[1].split("</div>")[0]
    assert "this request id was used for another action; nothing was written" in banner
    assert fhir_server.resource_counts() == counts
    shown = hidden(replayed.text)["request_id"]
    assert shown == form_b["request_id"] != form_a["request_id"]
    retried = browser.post(
        f"{dev.url}/patients/{b_id}/do/refer", data={**hidden(replayed.text), **data_b}, allow_redirects=False
    )
    assert retried.status_code == 303
    assert len(list(client.search("Task", {"patient": b["patient"]}))) == 1
    # Back and resubmit of A's own form (the same payload) is still A's one action, done already
    again = browser.post(f"{dev.url}/patients/{a_id}/do/refer", data={**form_a, **data_a}, timeout=30)
    assert again.status_code == 200 and "(already done)" in again.text
    assert len(list(client.search("Task", {"patient": a["patient"]}))) == 1
