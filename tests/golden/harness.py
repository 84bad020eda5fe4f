"""Golden cases: payload in -> transaction entries out, with a fixed clock and numbered urn:uuids.

A case file ``tests/golden/<workflow>/<case>.json`` holds:
  payload   the workflow payload (literal references only: no server is involved)
  found     resources the workflow reads (for workflows that update), keyed by "Type/id"
  now       the run's timestamp (ISO 8601)
  entries   the expected transaction entries: name, method, url, ifNoneExist/ifMatch, resource

Write a new case with ``python -m tests.golden.harness WORKFLOW CASE`` after filling payload/found/now;
it prints the entries for you to READ and check line by line; ``--write`` then saves them as expected.
"""

from __future__ import annotations

import itertools
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from fhircare.settings import Settings
from fhircare.workflows import WORKFLOWS, mappings_for
from fhircare.workflows.base import RunState

HERE = Path(__file__).resolve().parent


def planned_entries(workflow: str, case: dict[str, Any]) -> list[dict[str, Any]]:
    settings = Settings()
    cls = WORKFLOWS[workflow]
    instance = cls(None, mappings_for(settings), settings.profiles_dir)  # type: ignore[arg-type]
    payload = case["payload"]
    state = RunState(dict(payload), payload.get("request_id", "golden"), datetime.fromisoformat(case["now"]))
    state.found = dict(case.get("found") or {})
    counter = itertools.count(1)
    planned = instance.plan(state, new_uuid=lambda: f"00000000-0000-4000-8000-{next(counter):012d}")
    out = []
    for entry in planned:
        item = {"name": entry.name, "method": entry.method, "url": entry.url, "fullUrl": entry.full_url}
        if entry.if_none_exist:
            item["ifNoneExist"] = entry.if_none_exist
        if entry.if_match:
            item["ifMatch"] = entry.if_match
        item["resource"] = entry.resource
        out.append(item)
    return out


def case_files() -> list[Path]:
    return sorted(HERE.glob("*/*.json"))


if __name__ == "__main__":
    workflow, name = sys.argv[1], sys.argv[2]
    path = HERE / workflow / f"{name}.json"
    case = json.loads(path.read_text())
    entries = planned_entries(workflow, case)
    print(json.dumps(entries, indent=2))
    if "--write" in sys.argv:  # only after reading the output above
        case["entries"] = entries
        path.write_text(json.dumps(case, indent=2) + "\n")
