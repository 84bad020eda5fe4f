"""The README's main command, end to end: its printed worklist matches an independent search."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from fhircare.views.worklist import OPEN_STATUSES

FHIRCARE = str(Path(sys.executable).with_name("fhircare"))


def test_demo_seeds_plays_the_morning_and_prints_a_true_worklist(fhir_server, client, uid):
    seed = int(uid[:6], 16)
    answer = subprocess.run(
        [FHIRCARE, "--base", fhir_server.base_url, "demo", "--patients", "12", "--seed", str(seed)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert answer.returncode == 0, answer.stderr
    out = answer.stdout
    assert "Seeded 12 patients" in out
    for step in (
        "Accept the waiting referral",
        "Book the appointment",
        "Arrange the ride",
        "Check coverage",
        "Record the payers' answers to prior authorizations",
    ):
        assert step in out
    assert "== Care gaps:" in out and "== Caseload ==" in out and "== Patient summary ==" in out

    coordinator = re.search(r"== Worklist of (Practitioner/\S+)", out).group(1)
    section = out.split("== Worklist of", 1)[1].split("== The morning ==", 1)[0]
    printed = re.findall(r"^(Task/\S+)", section, flags=re.MULTILINE)
    assert 0 < len(printed) < 12  # 12 patients: the worklist is printed whole
    for task_ref in printed:
        assert client.read_reference(task_ref)["owner"]["reference"] == coordinator
    # independent search after the morning, which completed the top row and opened nothing for her
    open_now = {
        f"Task/{t['id']}"
        for t in client.search("Task", {"owner": coordinator, "status": ",".join(OPEN_STATUSES)})
    }
    assert client.read_reference(printed[0])["status"] == "completed"
    assert open_now == set(printed[1:])

    # the payer's answer recorded this morning: her prior-auth Task is finished, approved, and points at it
    decided = list(
        client.search(
            "Task",
            {
                "code": "http://hl7.org/fhir/CodeSystem/task-code|approve",
                "requester": coordinator,
                "status": "completed",
            },
        )
    )
    assert decided, "no prior authorization of hers was recorded"
    for task in decided:
        assert task["businessStatus"]["coding"][0]["code"] in ("approved", "denied")
        answer = next(o["valueReference"]["reference"] for o in task["output"] if "valueReference" in o)
        response = client.read_reference(answer)
        assert response["request"] == task["focus"]
