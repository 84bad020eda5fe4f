"""A payer answers a prior authorization with a ClaimResponse; fhircare records it on the Task.

The ClaimResponses here take the shapes real payers use (Da Vinci PAS item-level reviewAction, the PAS
reference implementation's top-level reviewAction, base R4 outcome/preAuthRef), two of them read
straight from the shared corpus.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from fhircare.errors import IllegalTransition, PayloadError
from fhircare.namespaces import Namespaces
from fhircare.workflows import run
from tests.conftest import CORPUS
from tests.support.cases import make, prior_auth_case
from tests.support.clock import day
from tests.support.servers import versions

PAS = "http://hl7.org/fhir/us/davinci-pas/StructureDefinition/"


def _requested(client, uid) -> tuple[dict[str, Any], str, str]:
    payload = prior_auth_case(client, uid).payload
    written = run("prior-auth", payload, client).written
    claim = next(r for r in written if r.startswith("Claim/"))
    task = next(r for r in written if r.startswith("Task/"))
    return payload, claim, task


def _pas_response(patient: str, claim: str | None, x12: str, number: str = "AUTH-1") -> dict[str, Any]:
    response: dict[str, Any] = {
        "resourceType": "ClaimResponse",
        "status": "active",
        "type": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/claim-type", "code": "professional"}]
        },
        "use": "preauthorization",
        "patient": {"reference": patient},
        "created": day(-8),
        "insurer": {"display": "Payer"},
        "outcome": "complete",
        "item": [
            {
                "itemSequence": 1,
                "adjudication": [
                    {
                        "category": {"coding": [{"code": "submitted"}]},
                        "extension": [
                            {
                                "url": PAS + "extension-reviewAction",
                                "extension": [
                                    {"url": "number", "valueString": number},
                                    {
                                        "url": PAS + "extension-reviewActionCode",
                                        "valueCodeableConcept": {
                                            "coding": [
                                                {
                                                    "system": "https://codesystem.x12.org/005010/306",
                                                    "code": x12,
                                                }
                                            ]
                                        },
                                    },
                                ],
                            }
                        ],
                    }
                ],
            }
        ],
    }
    if claim:
        response["request"] = {"reference": claim}
    return response


# the decision code system under the default namespace base (what these runs write)
DECISIONS = Namespaces().system("prior-auth-decision")


def _decision_codes(task: dict[str, Any]) -> dict[str, str]:
    return {c["system"]: c["code"] for c in task["businessStatus"]["coding"]}


def _outputs(task: dict[str, Any]) -> dict[str, Any]:
    return {
        o["type"]["text"]: o.get("valueReference", {}).get("reference") or o.get("valueString")
        for o in task["output"]
    }


def test_a_denial_ends_the_task_with_the_payers_code_in_two_requests(
    client, uid, server_requests, include_batch
):
    payload, claim, task_ref = _requested(client, uid)
    response = make(client, _pas_response(payload["patient"], claim, "A3", number=f"DENY-{uid}"))
    before = server_requests()

    result = run(
        "prior-auth",
        {
            "action": "record-decision",
            "task": task_ref,
            "claim_response": response,
            "actor": payload["provider"],
        },
        client,
    )

    # one batch read (Task + Claim, ClaimResponse; the Claim in one more batch where _include is ignored)
    assert server_requests() - before == 2 + include_batch
    task = client.read_reference(task_ref)
    assert task["status"] == "completed"
    assert versions(client, task_ref) == 2
    assert _decision_codes(task) == {
        DECISIONS: "denied",
        "https://codesystem.x12.org/005010/306": "A3",
    }
    assert _outputs(task) == {"Payer decision": response, "Authorization number": f"DENY-{uid}"}
    provenance = client.read_reference(next(r for r in result.written if r.startswith("Provenance/")))
    assert [t["reference"] for t in provenance["target"]] == [task_ref]
    assert provenance["agent"][0]["who"]["reference"] == payload["provider"]
    # the Claim itself is the payer's business: untouched
    assert versions(client, claim) == 1


def test_pending_keeps_the_task_open_until_the_final_answer(client, uid):
    payload, claim, task_ref = _requested(client, uid)
    pended = make(client, _pas_response(payload["patient"], claim, "A4"))
    run("prior-auth", {"action": "record-decision", "task": task_ref, "claim_response": pended}, client)
    task = client.read_reference(task_ref)
    assert task["status"] == "ready"  # created ready: the payer's review is a given
    assert _decision_codes(task)[DECISIONS] == "pending"

    granted = make(client, _pas_response(payload["patient"], claim, "A1", number=f"OK-{uid}"))
    run("prior-auth", {"action": "record-decision", "task": task_ref, "claim_response": granted}, client)
    task = client.read_reference(task_ref)
    assert task["status"] == "completed"
    assert _decision_codes(task)[DECISIONS] == "approved"
    # the later answer replaces the earlier one; the Task points at one decision
    assert _outputs(task) == {"Payer decision": granted, "Authorization number": f"OK-{uid}"}

    # the earlier payload again, after the Task moved on since: a new action (no request id), refused
    first = {"action": "record-decision", "task": task_ref, "claim_response": pended}
    with pytest.raises(IllegalTransition, match="already completed"):
        run("prior-auth", first, client)
    # a new request about a finished Task is refused
    with pytest.raises(IllegalTransition, match="already completed"):
        run("prior-auth", {**first, "request_id": f"late-{uid}"}, client)
    assert versions(client, task_ref) == 3


@pytest.mark.skipif(
    not CORPUS.is_dir(), reason=f"needs the shared corpus at {CORPUS} (../shared/corpus beside the clone)"
)
def test_the_reference_implementations_response_from_the_corpus_is_read(client, uid):
    """PAS RI shape: top-level reviewAction valueCode, no request reference (matched on the patient)."""
    payload, _claim, task_ref = _requested(client, uid)
    corpus = json.loads(
        (CORPUS / "r4/examples/ClaimResponse/priorauth-ri-claimresponse-only.json").read_text()
    )
    response = copy.deepcopy(corpus)
    response.pop("id")
    response["patient"] = {"reference": payload["patient"]}
    response["insurer"] = {"reference": payload["payer"]}
    response.pop("requestor", None)
    stored = make(client, response)

    run("prior-auth", {"action": "record-decision", "task": task_ref, "claim_response": stored}, client)

    task = client.read_reference(task_ref)
    assert task["status"] == "completed"
    assert _decision_codes(task) == {
        DECISIONS: "approved",
        "https://codesystem.x12.org/005010/306": "A1",
    }


@pytest.mark.parametrize("mismatch", ["other-claim", "other-patient", "not-preauth", "not-prior-auth-task"])
def test_a_response_that_does_not_answer_the_task_is_refused_and_nothing_written(
    client, uid, fhir_server, mismatch
):
    payload, claim, task_ref = _requested(client, uid)
    other = _requested(client, uid + "b")
    if mismatch == "other-claim":
        response = _pas_response(payload["patient"], other[1], "A1")
    elif mismatch == "other-patient":
        response = _pas_response(other[0]["patient"], None, "A1")
    else:
        response = _pas_response(payload["patient"], claim, "A1")
    if mismatch == "not-preauth":
        response["use"] = "claim"
    response_ref = make(client, response)
    if mismatch == "not-prior-auth-task":
        task_ref = make(
            client,
            {
                "resourceType": "Task",
                "status": "requested",
                "intent": "order",
                "focus": {"reference": payload["service_request"]},
                "for": {"reference": payload["patient"]},
            },
        )
    counts = fhir_server.resource_counts()

    with pytest.raises(PayloadError) as refused:
        run(
            "prior-auth",
            {"action": "record-decision", "task": task_ref, "claim_response": response_ref},
            client,
        )

    expected_path = "$.task" if mismatch == "not-prior-auth-task" else "$.claim_response"
    assert refused.value.issues[0].expression == (expected_path,)
    assert fhir_server.resource_counts() == counts
    assert versions(client, task_ref) == 1


def test_record_decision_needs_the_task_and_the_response(client):
    with pytest.raises(PayloadError) as refused:
        run("prior-auth", {"action": "record-decision", "task": "Task/1"}, client)
    assert "claim_response" in str(refused.value)


def test_the_patient_summary_shows_each_prior_authorization_with_the_latest_answer(
    client, uid, server_requests
):
    from fhircare.views.summary import patient_summary

    payload, claim, _task = _requested(client, uid)
    pended = _pas_response(payload["patient"], claim, "A4")
    pended["created"] = day(-27)
    make(client, pended)
    final = make(client, _pas_response(payload["patient"], claim, "A3", number=f"N-{uid}"))
    other_claim = _requested(client, uid + "x")[1]  # another patient's: not in this summary

    before = server_requests()
    summary = patient_summary(client, payload["patient"])
    assert server_requests() - before == 1
    assert summary.problems == []
    assert summary.prior_authorizations == [
        {
            "claim": claim,
            "service": "Diabetes education",
            "requested": client.read_reference(claim)["created"][:10],
            "insurer": payload["payer"],
            "decision": "denied",
            "decision_text": "Denied",
            "auth_number": f"N-{uid}",
            "claim_response": final,
        }
    ]
    assert other_claim not in {a["claim"] for a in summary.prior_authorizations}
