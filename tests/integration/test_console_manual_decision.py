"""Issue 22, item 3: a payer's decision given by phone or fax, recorded by hand. ``prior-auth``
``record-decision`` with ``manual`` writes the ClaimResponse, the decision on the Task and the
Provenance in one transaction (library, and the Task's page); refusals name their field and write
nothing. Checked on the FHIR server."""

from __future__ import annotations

import re
from typing import Any

import pytest
import requests

from fhircare.errors import PayloadError
from fhircare.workflows import run
from tests.support.cases import prior_auth_case
from tests.support.clock import day

PAS = "http://hl7.org/fhir/us/davinci-pas/StructureDefinition/"


@pytest.fixture()
def asked(client, uid) -> dict[str, str]:
    payload = prior_auth_case(client, uid).payload
    written = run("prior-auth", payload, client).written
    return {
        **payload,
        "claim": next(r for r in written if r.startswith("Claim/")),
        "task": next(r for r in written if r.startswith("Task/")),
    }


def _manual(**extra: Any) -> dict[str, Any]:
    manual = {
        "decision": "partial",
        "number": "PA-7788",
        "period": {"start": day(1), "end": day(90)},
        "units": 6,
        "said_by": "Dana Whitfield",
        "channel": "phone",
    }
    return {**manual, **extra}


def _read(client, reference: str) -> dict[str, Any]:
    rtype, rid = reference.split("/")
    return client.read(rtype, rid)


def _responses(client, claim: str) -> list[dict[str, Any]]:
    return list(client.search("ClaimResponse", {"request": claim}))


def test_a_phone_decision_writes_the_claim_response_the_decision_and_its_provenance_once(client, asked, uid):
    payload = {
        "action": "record-decision",
        "task": asked["task"],
        "actor": asked["provider"],
        "manual": _manual(),
        "request_id": f"phone-{uid}",
    }
    first = run("prior-auth", payload, client)
    again = run("prior-auth", payload, client)
    assert again.repeated
    [response] = _responses(client, asked["claim"])
    assert response["use"] == "preauthorization" and response["outcome"] == "partial"
    assert response["insurer"]["reference"] == asked["payer"]
    assert response["patient"]["reference"] == asked["patient"]
    assert response["preAuthRef"] == "PA-7788"
    assert response["preAuthPeriod"] == {"start": day(1), "end": day(90)}
    adjudication = response["item"][0]["adjudication"][0]
    assert adjudication["value"] == 6
    review = adjudication["extension"][0]
    assert review["url"] == PAS + "extension-reviewAction"
    codes = [
        c["valueCodeableConcept"]["coding"][0]["code"]
        for c in review["extension"]
        if "valueCodeableConcept" in c
    ]
    assert codes == ["A2"]
    assert "Dana Whitfield" in response["disposition"] and "phone" in response["disposition"]
    task = _read(client, asked["task"])
    assert task["status"] == "completed"
    assert "partially-approved" in [c["code"] for c in task["businessStatus"]["coding"]]
    outputs = {o["type"]["text"]: o for o in task["output"]}
    assert outputs["Payer decision"]["valueReference"]["reference"] == f"ClaimResponse/{response['id']}"
    assert outputs["Authorization number"]["valueString"] == "PA-7788"
    runs = client.search("Provenance", {"target": asked["task"]})
    [provenance] = [p for p in runs if "ClaimResponse/" in str(p["target"])]
    targets = {t["reference"].split("/_history")[0] for t in provenance["target"]}
    assert targets == {asked["task"], f"ClaimResponse/{response['id']}"}
    roles = {a["type"]["coding"][0]["code"]: a for a in provenance["agent"]}
    assert roles["author"]["who"]["reference"] == asked["provider"]
    assert "Dana Whitfield" in roles["informant"]["who"]["display"]
    assert roles["informant"]["onBehalfOf"]["reference"] == asked["payer"]
    assert len(_responses(client, asked["claim"])) == 1 and first.written


def test_a_pended_phone_decision_leaves_the_task_open(client, asked):
    manual = {"decision": "pended", "said_by": "Lee at the payer", "channel": "fax"}
    run("prior-auth", {"action": "record-decision", "task": asked["task"], "manual": manual}, client)
    task = _read(client, asked["task"])
    assert task["status"] == "ready"
    [response] = _responses(client, asked["claim"])
    assert response["outcome"] == "queued" and "preAuthRef" not in response


@pytest.mark.parametrize(
    ("manual", "path"),
    [
        (_manual(period={"start": day(30), "end": day(2)}), "$.manual.period.end"),
        (_manual(decision="approved", number=None), "$.manual.number"),
        (_manual(units=0), "$.manual.units"),
    ],
    ids=["period-ends-before-it-starts", "approved-without-number", "zero-units"],
)
def test_a_bad_manual_decision_is_refused_at_its_field_and_nothing_is_written(client, asked, manual, path):
    manual = {k: v for k, v in manual.items() if v is not None}
    before = _read(client, asked["task"])["meta"]["versionId"]
    with pytest.raises(PayloadError) as refused:
        run("prior-auth", {"action": "record-decision", "task": asked["task"], "manual": manual}, client)
    assert path in [p for issue in refused.value.issues for p in issue.expression]
    assert _responses(client, asked["claim"]) == []
    assert _read(client, asked["task"])["meta"]["versionId"] == before


def _hidden(html: str, action: str) -> dict[str, str]:
    form = html.split(f'action="{action}"', 1)[1].split("</form>", 1)[0]
    return dict(re.findall(r'<input type="hidden" name="(csrf|request_id)" value="([^"]+)"', form))


def test_the_task_page_takes_the_decision_marks_a_refusal_at_its_field_and_writes_once(dev, client, asked):
    pid, tid = asked["patient"].split("/")[1], asked["task"].split("/")[1]
    page, action = f"/patients/{pid}/tasks/{tid}", f"/patients/{pid}/tasks/{tid}/decision"
    browser = requests.Session()
    html = browser.get(dev.url + page, timeout=30).text
    assert (
        "The payer&#39;s decision, by phone or fax" in html or "The payer's decision, by phone or fax" in html
    )
    hidden = _hidden(html, action)
    form = {
        "decision": "approved",
        "number": "",
        "period_start": day(1),
        "period_end": day(60),
        "units": "4",
        "said_by": "Dana Whitfield",
        "channel": "fax",
    }
    refused = browser.post(dev.url + action, data={**hidden, **form}, allow_redirects=False, timeout=30)
    assert refused.status_code == 422
    marked = refused.text.split('id="number-err"', 1)[1].split("</p>", 1)[0]
    assert "authorization number" in marked
    assert "Not done" in refused.text and 'role="alert"' in refused.text
    assert _responses(client, asked["claim"]) == []
    form["number"] = "PA-1234"
    for _ in range(2):  # a double submit is one action
        sent = browser.post(dev.url + action, data={**hidden, **form}, allow_redirects=False, timeout=30)
        assert sent.status_code == 303, sent.text[-1500:]
    [response] = _responses(client, asked["claim"])
    assert response["preAuthRef"] == "PA-1234" and response["outcome"] == "complete"
    assert "fax" in response["disposition"]
    task = _read(client, asked["task"])
    assert task["status"] == "completed"
    after = browser.get(dev.url + page, timeout=30).text
    assert "Payer&#39;s decision recorded" in after or "Payer's decision recorded" in after
    assert 'action="' + action + '"' not in after  # a closed Task takes no second decision


def test_the_api_takes_a_manual_decision_and_refuses_one_given_with_a_claim_response(dev, client, asked):
    url = f"{dev.url}/api/v1/workflows/prior-auth"
    both = {
        "action": "record-decision",
        "task": asked["task"],
        "claim_response": "ClaimResponse/x1",
        "manual": _manual(),
    }
    refused = requests.post(url, json=both, timeout=30)
    assert refused.status_code == 422  # a payload the schema refuses: OperationOutcome at the field
    assert "$.claim_response" in refused.text
    assert _responses(client, asked["claim"]) == []
    manual = _manual(decision="denied", number=None, units=None, period=None, channel="fax")
    manual = {k: v for k, v in manual.items() if v is not None}
    payload = {"action": "record-decision", "task": asked["task"], "manual": manual}
    sent = requests.post(url, json=payload, timeout=30)
    assert sent.status_code == 201, sent.text[-1500:]
    [response] = _responses(client, asked["claim"])
    assert response["outcome"] == "complete" and "fax" in response["disposition"]
    task = _read(client, asked["task"])
    assert task["status"] == "completed"
    assert "denied" in [c["code"] for c in task["businessStatus"]["coding"]]


def test_the_request_form_asks_nothing_of_a_decision_taken_by_hand(dev, asked):
    pid = asked["patient"].split("/")[1]
    form = requests.get(f"{dev.url}/patients/{pid}/do/prior-auth", timeout=30).text
    assert 'name="manual' not in form and "said_by" not in form


def test_a_manual_decision_costs_one_read_and_one_transaction(client, asked, server_requests, include_batch):
    payload = {"action": "record-decision", "task": asked["task"], "manual": _manual()}
    before = server_requests()
    run("prior-auth", payload, client)
    # the Task with its Claim (one more batch where _include is ignored), then the transaction
    assert server_requests() - before == 2 + include_batch
