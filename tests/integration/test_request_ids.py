"""A request id names one intended action. Without one, the same content is a repeat only while nothing
the earlier run wrote has changed; otherwise it is a new action, applied or refused on its own merits."""

from __future__ import annotations

import json

import pytest

from fhircare.errors import IllegalTransition
from fhircare.namespaces import Namespaces, legacy_system
from fhircare.workflows import run
from tests.support.cases import basics, coverage_case, referral_payload
from tests.support.servers import versions


def _task(client, uid):
    b = basics(client, uid)
    referral = run("refer", referral_payload(b, uid), client)
    return b, referral.written[1]


def test_resuming_a_task_applies_every_step_without_request_ids(client, uid):
    b, task = _task(client, uid)
    steps = ["accepted", "in-progress", "on-hold", "in-progress", "on-hold", "in-progress"]
    results = [run("task", {"task": task, "to": to, "actor": b["coordinator"]}, client) for to in steps]

    assert [r.repeated for r in results] == [False] * len(steps)
    assert client.read_reference(task)["status"] == "in-progress"
    assert versions(client, task) == 1 + len(steps)
    assert len({r.request_id for r in results}) == len(steps)


def test_the_same_step_sent_twice_in_a_row_is_one_action(client, uid):
    b, task = _task(client, uid)
    first = run("task", {"task": task, "to": "accepted", "actor": b["coordinator"]}, client)
    again = run("task", {"task": task, "to": "accepted", "actor": b["coordinator"]}, client)

    assert again.repeated and again.written == first.written
    assert versions(client, task) == 2


def test_an_illegal_transition_is_refused_even_when_its_content_equals_an_earlier_legal_one(
    client, uid, fhir_server
):
    b, task = _task(client, uid)
    for to in ("accepted", "in-progress", "completed"):
        run("task", {"task": task, "to": to, "actor": b["coordinator"]}, client)
    counts = fhir_server.resource_counts()
    with pytest.raises(IllegalTransition):
        run("task", {"task": task, "to": "in-progress", "actor": b["coordinator"]}, client)
    assert client.read_reference(task)["status"] == "completed"
    assert fhir_server.resource_counts() == counts


def test_an_explicit_request_id_is_one_action_whatever_happened_since(client, uid):
    b, task = _task(client, uid)
    payload = {"task": task, "to": "accepted", "actor": b["coordinator"], "request_id": f"accept-{uid}"}
    first = run("task", payload, client)
    run("task", {"task": task, "to": "in-progress", "actor": b["coordinator"]}, client)
    again = run("task", payload, client)

    assert again.repeated and again.written == first.written
    assert client.read_reference(task)["status"] == "in-progress"


def test_the_same_referral_after_its_task_moved_on_is_a_new_referral(client, uid):
    b = basics(client, uid)
    payload = referral_payload(b, uid)
    first = run("refer", payload, client)
    assert run("refer", payload, client).repeated  # nothing changed: a resend
    run("task", {"task": first.written[1], "to": "accepted", "actor": b["coordinator"]}, client)

    second = run("refer", payload, client)
    assert not second.repeated and second.written[0] != first.written[0]
    assert len(list(client.search("ServiceRequest", {"patient": b["patient"]}))) == 2


# ---- resources an earlier release stamped with urn:fhircare: systems ---------------------------------

NEW_SYSTEMS = Namespaces()


def _as_an_earlier_release_wrote(client, workflow, payload):
    """Send the transaction ``workflow`` would send, with every fhircare system in its earlier
    ``urn:fhircare:`` form (as releases before the namespace base wrote them); its written references."""
    bundle = run(workflow, payload, client, dry_run=True).details["bundle"]
    text = json.dumps(bundle)
    for name in ("request-id", "workflow", "member-id"):
        text = text.replace(NEW_SYSTEMS.system(name), legacy_system(name))
    assert "fhircare.example.org" not in text
    answer = client.transaction(json.loads(text))
    # then this release is installed: it has learned nothing about the server yet
    client.learn(legacy_stamps=None)
    return [e["response"]["location"].split("/_history")[0].rsplit("/", 2)[-2:] for e in answer["entry"]]


def _stamped(client, rtype, system, value):
    key = "_tag" if rtype == "Provenance" else "identifier"
    return len(list(client.search(rtype, {key: f"{system}|{value}"})))


def test_a_referral_an_earlier_release_wrote_is_found_and_not_written_again(client, uid):
    b = basics(client, uid)
    payload = referral_payload(b, uid, request_id=f"old-{uid}")
    earlier = ["/".join(parts) for parts in _as_an_earlier_release_wrote(client, "refer", payload)]

    again = run("refer", payload, client)

    assert again.repeated and again.written == earlier
    for rtype, entry in (("ServiceRequest", "referral"), ("Task", "task"), ("Provenance", "provenance")):
        value = f"old-{uid}/{entry}"
        assert _stamped(client, rtype, legacy_system("request-id"), value) == 1
        assert _stamped(client, rtype, NEW_SYSTEMS.system("request-id"), value) == 0


def test_request_id_criteria_name_the_earlier_system_once_the_server_holds_its_stamps(client, uid):
    b = basics(client, uid)
    _as_an_earlier_release_wrote(client, "refer", referral_payload(b, uid, request_id=f"old-{uid}"))

    bundle = run("refer", referral_payload(b, uid, request_id=f"new-{uid}"), client, dry_run=True).details[
        "bundle"
    ]

    assert client.behaviour.legacy_stamps is True
    criteria = [e["request"]["ifNoneExist"] for e in bundle["entry"] if e["request"].get("ifNoneExist")]
    assert criteria and all(legacy_system("request-id") + "|" in c for c in criteria)


def test_a_task_step_an_earlier_release_recorded_is_found_by_its_provenance(client, uid):
    b, task = _task(client, uid)
    payload = {"task": task, "to": "accepted", "actor": b["coordinator"], "request_id": f"acc-{uid}"}
    earlier = ["/".join(parts) for parts in _as_an_earlier_release_wrote(client, "task", payload)]

    again = run("task", payload, client)  # reads the Task: its read batch looks the Provenance up by _tag

    assert again.repeated and again.written == earlier
    assert versions(client, task) == 2
    assert _stamped(client, "Provenance", NEW_SYSTEMS.system("request-id"), f"acc-{uid}/provenance") == 0


def test_a_coverage_an_earlier_release_wrote_is_found_by_its_member_id(client, uid):
    payload = coverage_case(client, uid).payload
    _as_an_earlier_release_wrote(client, "coverage-check", {**payload, "request_id": f"cov-a-{uid}"})

    later = run("coverage-check", {**payload, "request_id": f"cov-b-{uid}"}, client)

    assert not any(ref.startswith("Coverage/") for ref in later.created)
    assert _stamped(client, "Coverage", legacy_system("member-id"), f"SUB-{uid}") == 1
    assert _stamped(client, "Coverage", NEW_SYSTEMS.system("member-id"), f"SUB-{uid}") == 0
