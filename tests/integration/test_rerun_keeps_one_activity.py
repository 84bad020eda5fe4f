"""Runs of a request id an earlier attempt left in part (both suite servers).

A re-run after an undo that could not complete (the referral and the plan's new activity stayed,
the rest was undone and the Provenance withdrawn) completes the request without a second plan
activity: the run finds what its conditional create will match and does not append it again. The
state is made by hand here so that both suite servers run it (an incomplete undo itself needs a
non-atomic server: tests/integration/test_review_issue20.py). A repeat whose Provenance names a
resource that is gone is refused, never told "done"."""

from __future__ import annotations

import pytest

from fhircare.errors import Conflict
from fhircare.workflows import run
from tests.support.cases import basics, referral_payload


def test_a_re_run_whose_referral_is_already_on_the_plan_adds_no_second_activity(client, server_requests, uid):
    b = basics(client, uid)
    payload = referral_payload(b, uid, care_plan=b["plan"], request_id=f"rerun-{uid}")
    first = run("refer", payload, client)
    referral = first.written[0]
    assert referral.startswith("ServiceRequest/")
    for reference in first.written:  # what an incomplete undo leaves: the referral and the plan's activity
        if reference.startswith(("Task/", "Provenance/")):
            client.delete(*reference.split("/"))
    before = server_requests()
    done = run("refer", payload, client)
    assert server_requests() - before == 2  # one read batch (the plan, the lookups), one transaction
    plan = client.read_reference(b["plan"])
    assert not done.repeated and done.written[0] == referral
    assert [a["reference"]["reference"] for a in plan["activity"]] == [referral]
    task = client.read_reference(next(r for r in done.written if r.startswith("Task/")))
    assert task["focus"]["reference"] == referral


def test_a_repeat_whose_earlier_run_is_not_whole_is_refused_and_writes_nothing(client, fhir_server, uid):
    """The request id's Provenance is there but a resource it names is not (its run failed and is
    being undone, or it was deleted since): the same request is not told "done"; nothing is written."""
    b = basics(client, uid)
    payload = referral_payload(b, uid, care_plan=b["plan"], request_id=f"whole-{uid}")
    first = run("refer", payload, client)
    task = next(r for r in first.written if r.startswith("Task/"))
    client.delete(*task.split("/"))
    counts = fhir_server.resource_counts()
    with pytest.raises(Conflict) as refused:
        run("refer", payload, client)
    assert f"{task} missing" in str(refused.value) and "nothing was written" in str(refused.value)
    assert fhir_server.resource_counts() == counts
