"""`fhircare authorizations`: prior-auth Tasks with the payers' answers, and recording them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from fhircare.views.authorizations import authorizations
from fhircare.workflows import run
from tests.integration.test_prior_auth_decision import _pas_response
from tests.support.cases import make, prior_auth_case
from tests.support.clock import day
from tests.support.servers import versions

FHIRCARE = str(Path(sys.executable).with_name("fhircare"))


def _three_requests(client, uid):
    """One provider asks for three authorizations: A approved (after a pended answer), B denied, C unanswered."""
    base = prior_auth_case(client, uid).payload
    provider = make(client, {"resourceType": "Practitioner", "name": [{"family": f"Prov{uid}"}]})
    made = {}
    for name in "ABC":
        written = run("prior-auth", {**base, "provider": provider, "note": f"{name} {uid}"}, client).written
        made[name] = {
            "task": next(r for r in written if r.startswith("Task/")),
            "claim": next(r for r in written if r.startswith("Claim/")),
        }
    older = _pas_response(base["patient"], made["A"]["claim"], "A4")
    older["created"] = day(-27)
    make(client, older)
    made["A"]["answer"] = make(
        client, _pas_response(base["patient"], made["A"]["claim"], "A1", number=f"A-{uid}")
    )
    made["B"]["answer"] = make(client, _pas_response(base["patient"], made["B"]["claim"], "A3"))
    return provider, made


def test_rows_carry_the_latest_answer_in_two_requests_per_page(client, uid, server_requests, include_batch):
    provider, made = _three_requests(client, uid)
    before = server_requests()
    rows = {row.task: row for row in authorizations(client, requester=provider)}
    # one page of Tasks (+ Claims, patients: one batch where _include is ignored), one ClaimResponse search
    assert server_requests() - before == 2 + include_batch

    assert set(rows) == {made[n]["task"] for n in "ABC"}
    a, b, c = (rows[made[n]["task"]] for n in "ABC")
    assert (a.decision, a.claim_response, a.auth_number) == ("approved", made["A"]["answer"], f"A-{uid}")
    assert (b.decision, b.claim_response) == ("denied", made["B"]["answer"])
    assert (c.decision, c.claim_response) == ("awaiting", None)
    assert all(row.status == "ready" and not row.recorded for row in rows.values())
    assert a.claim == made["A"]["claim"] and a.patient_name

    before = server_requests()
    paged = list(authorizations(client, requester=provider, page_size=2))
    assert len(paged) == 3
    assert server_requests() - before == 2 * (2 + include_batch)  # two pages, as many requests each


def test_the_cli_records_the_answers_and_a_second_run_finds_nothing_new(client, uid, fhir_server):
    provider, made = _three_requests(client, uid)
    command = [FHIRCARE, "--base", fhir_server.base_url, "authorizations", "--requester", provider]

    first = subprocess.run(
        [*command, "--record", "--actor", provider, "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert first.returncode == 0, first.stderr
    printed = {row["task"]: row for row in json.loads(first.stdout)}
    assert {t: (r["decision"], r["recorded"]) for t, r in printed.items()} == {
        made["A"]["task"]: ("approved", True),
        made["B"]["task"]: ("denied", True),
        made["C"]["task"]: ("awaiting", False),
    }
    assert "2 answer(s) on their Tasks; 0 refused." in first.stderr

    for name, status, code in (
        ("A", "completed", "approved"),
        ("B", "completed", "denied"),
        ("C", "ready", None),  # prior-auth Tasks are created ready: the payer's review is a given
    ):
        task = client.read_reference(made[name]["task"])
        assert task["status"] == status, name
        codes = [c["code"] for c in (task.get("businessStatus") or {}).get("coding", [])]
        assert (codes[0] if codes else None) == code, name

    again = subprocess.run(
        [*command, "--record", "--format", "json"], capture_output=True, text=True, timeout=60
    )
    assert again.returncode == 0, again.stderr
    assert [row["task"] for row in json.loads(again.stdout)] == [made["C"]["task"]]  # the finished ones left
    assert "0 answer(s) on their Tasks" in again.stderr
    assert versions(client, made["A"]["task"]) == 2

    everything = subprocess.run(
        [*command, "--all", "--format", "csv"], capture_output=True, text=True, timeout=60
    )
    assert everything.returncode == 0, everything.stderr
    lines = everything.stdout.strip().splitlines()
    assert lines[0].startswith("task,patient_name,service,status,decision")
    assert len(lines) == 4
