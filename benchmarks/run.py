"""Benchmarks against the embedded FHIR server. Reported as request counts and ratios, never asserted.

    python benchmarks/run.py [--refer N] [--worklist N ...] [--stream N ...] [--json FILE]

- refer: fhircare's one-transaction referral vs typical client code (one POST per resource, then
  PUTs to link them): requests per referral and wall-time ratio; fhircare's own time per run vs the
  time spent waiting on the server.
- worklist: fhircare (paged search with _include) vs the N+1 approach (search Tasks, then read
  each patient and focus one by one): requests and time ratio.
- stream: peak memory (tracemalloc) while streaming N worklist rows; it should stay flat.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fhircare.fhir import FhirClient
from fhircare.server import EmbeddedServer
from fhircare.settings import Settings
from fhircare.views.worklist import stream_worklist, worklist
from fhircare.workflows import get_workflow
from tests.support.clock import at, day, today

TODAY = today()


class TimedClient(FhirClient):
    """Counts requests and the time spent waiting for the server."""

    waited = 0.0

    def request(self, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return super().request(*args, **kwargs)
        finally:
            self.waited += time.perf_counter() - started


def _make(client: FhirClient, resource: dict[str, Any]) -> str:
    created = client.create(resource)
    return f"{created['resourceType']}/{created['id']}"


def bench_refer(base: str, runs: int, tag: str = "bench") -> dict[str, Any]:
    client = TimedClient(base)
    patient = _make(client, {"resourceType": "Patient", "name": [{"family": "Bench"}]})
    coordinator = _make(client, {"resourceType": "Practitioner", "name": [{"family": "Coord"}]})
    program = _make(client, {"resourceType": "Organization", "name": "Program"})
    plan = _make(
        client,
        {"resourceType": "CarePlan", "status": "active", "intent": "plan", "subject": {"reference": patient}},
    )
    workflow = get_workflow("refer", client)
    payload = {
        "patient": patient,
        "service": "diabetes-education",
        "performer": program,
        "requester": coordinator,
        "reason": "diabetes",
        "priority": "routine",
        "due": day(174),
    }
    # the same work as the typical code below: referral, task, provenance and the plan's new activity
    with_plan = {**payload, "care_plan": plan}
    client.request_count, client.waited = 0, 0.0
    started = time.perf_counter()
    for i in range(runs):
        workflow.run({**with_plan, "request_id": f"{tag}-{i}"})
    fhircare_total = time.perf_counter() - started
    fhircare_requests, fhircare_wait = client.request_count, client.waited

    # typical client code: POST the ServiceRequest, POST the Task, POST the Provenance, then
    # read the CarePlan and PUT it with the new activity, and PUT the ServiceRequest to link back
    naive = TimedClient(base)
    started = time.perf_counter()
    for _ in range(runs):
        request = naive.create(
            {
                "resourceType": "ServiceRequest",
                "status": "active",
                "intent": "order",
                "subject": {"reference": patient},
                "code": {"text": "Diabetes education"},
            }
        )
        task = naive.create(
            {
                "resourceType": "Task",
                "status": "requested",
                "intent": "order",
                "for": {"reference": patient},
                "owner": {"reference": program},
            }
        )
        task["focus"] = {"reference": f"ServiceRequest/{request['id']}"}
        naive.update(task)
        current = naive.read_reference(plan)
        current.setdefault("activity", []).append(
            {"reference": {"reference": f"ServiceRequest/{request['id']}"}}
        )
        naive.update(current)
        naive.create(
            {
                "resourceType": "Provenance",
                "target": [{"reference": f"Task/{task['id']}"}],
                "recorded": at(-160, "00:00"),
                "agent": [{"who": {"reference": coordinator}}],
            }
        )
    naive_total = time.perf_counter() - started
    client.request_count = 0
    for i in range(min(runs, 50)):
        workflow.run({**payload, "request_id": f"{tag}-noplan-{i}"})
    without_plan = client.request_count / min(runs, 50)
    # for servers that enforce referential integrity: no reference check, one transaction
    unchecked = get_workflow("refer", client, Settings(base_url=base, verify_references="off"))
    client.request_count = 0
    for i in range(min(runs, 50)):
        unchecked.run({**payload, "request_id": f"{tag}-unchecked-{i}"})
    return {
        "runs": runs,
        "fhircare_requests_per_run": fhircare_requests / runs,
        "fhircare_requests_per_run_without_care_plan": without_plan,
        "fhircare_requests_per_run_without_care_plan_or_reference_check": client.request_count
        / min(runs, 50),
        "naive_requests_per_run": naive.request_count / runs,
        "fhircare_ms_per_run": 1000 * fhircare_total / runs,
        "fhircare_own_ms_per_run": 1000 * (fhircare_total - fhircare_wait) / runs,
        "fhircare_server_wait_ms_per_run": 1000 * fhircare_wait / runs,
        "naive_ms_per_run": 1000 * naive_total / runs,
        "wall_time_ratio_naive_over_fhircare": naive_total / fhircare_total,
    }


def seed_tasks(client: FhirClient, count: int) -> str:
    owner = _make(client, {"resourceType": "Practitioner", "name": [{"family": f"Owner{count}"}]})
    patients = [_make(client, {"resourceType": "Patient", "name": [{"family": f"P{i}"}]}) for i in range(50)]
    requests = [
        _make(
            client,
            {
                "resourceType": "ServiceRequest",
                "status": "active",
                "intent": "order",
                "subject": {"reference": p},
                "code": {"text": "Consult"},
            },
        )
        for p in patients
    ]
    for start in range(0, count, 500):
        entries = []
        for i in range(start, min(count, start + 500)):
            entries.append(
                {
                    "resource": {
                        "resourceType": "Task",
                        "status": "requested",
                        "intent": "order",
                        "priority": "routine",
                        "for": {"reference": patients[i % 50]},
                        "focus": {"reference": requests[i % 50]},
                        "owner": {"reference": owner},
                        "authoredOn": at(-9, "09:00"),
                        "restriction": {"period": {"end": day(10)}},
                    },
                    "request": {"method": "POST", "url": "Task"},
                }
            )
        client.transaction({"entry": entries})
    return owner


def bench_worklist(base: str, count: int) -> dict[str, Any]:
    setup = FhirClient(base)
    owner = seed_tasks(setup, count)
    client = TimedClient(base)
    client.capabilities()
    client.request_count = 0
    started = time.perf_counter()
    rows = worklist(client, owners=[owner], page_size=100, today=TODAY)
    fhircare_total = time.perf_counter() - started
    fhircare_requests = client.request_count

    naive = TimedClient(base)
    started = time.perf_counter()
    tasks = list(naive.search("Task", {"owner": owner, "_count": 100}))
    for task in tasks:
        naive.read_reference(task["for"]["reference"])
        naive.read_reference(task["focus"]["reference"])
    naive_total = time.perf_counter() - started
    assert len(rows) == len(tasks) == count
    return {
        "tasks": count,
        "fhircare_requests": fhircare_requests,
        "naive_requests": naive.request_count,
        "fhircare_seconds": fhircare_total,
        "naive_seconds": naive_total,
        "time_ratio_naive_over_fhircare": naive_total / fhircare_total,
    }


def bench_stream(base: str, count: int) -> dict[str, Any]:
    owner = seed_tasks(FhirClient(base), count)
    client = FhirClient(base)
    client.capabilities()
    tracemalloc.start()
    seen = 0
    for _ in stream_worklist(client, owners=[owner], page_size=100, today=TODAY, use_include=True):
        seen += 1
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"tasks": seen, "peak_kib": round(peak / 1024)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--refer", type=int, default=200)
    parser.add_argument("--worklist", type=int, nargs="*", default=[1000, 5000])
    parser.add_argument("--stream", type=int, nargs="*", default=[1000, 10000])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results: dict[str, Any] = {}
    with EmbeddedServer() as server:
        if args.refer:
            results["refer"] = bench_refer(server.base_url, args.refer)
        results["worklist"] = [bench_worklist(server.base_url, n) for n in args.worklist]
        results["stream"] = [bench_stream(server.base_url, n) for n in args.stream]
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
