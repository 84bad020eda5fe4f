"""Issue 22, item 5: a form's request id is fixed when it is first rendered for its intent and consumed
when its submission succeeds. Resubmitting it (Back then resubmit, a double submit) is one action; a
second visit to the form is a new one."""

from __future__ import annotations

import requests

from fhircare.workflows import run
from tests.support.cases import basics, referral_payload
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
