"""The same work on each FHIR server of the suite: the embedded server, Medplum's FHIR router (Node, in
memory) and the embedded server behind nginx. Reported as request counts and ratios, never asserted.

    python benchmarks/servers.py [--refer N] [--worklist N] [--json FILE]

- requests per run of every workflow (each case of tests/support/cases through a fresh client, after
  fhircare has learned the server once: that learning is a one-time cost per server, reported apart);
- referral + CarePlan activity: fhircare vs one-POST-per-resource code, wall-time ratio per server;
- worklist of N tasks: requests and seconds per server, and vs the N+1 approach.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import run as single  # noqa: E402  (benchmarks/run.py: the embedded-only benchmark's functions)

from fhircare.fhir import FhirClient  # noqa: E402
from fhircare.server import EmbeddedServer  # noqa: E402
from fhircare.workflows import run  # noqa: E402
from tests.servers import nginx  # noqa: E402
from tests.servers.medplum import MedplumServer  # noqa: E402
from tests.support.cases import CASES  # noqa: E402


def learn(base: str) -> int:
    """What fhircare learns about a server before its first write; returns the requests it took."""
    with FhirClient(base) as client:
        client.resolves_conditional_references()
        client.include_works("Task", "Task:focus")
        return client.request_count


def workflow_requests(base: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    with FhirClient(base) as setup:
        for name, make_case in sorted(CASES.items()):
            case = make_case(setup, f"bench{name.replace('+', '')}")
            with FhirClient(base) as fresh:
                fresh.include_works("Task", "Task:focus")  # remembered per server after the first run
                before = fresh.request_count
                run(name.split("+")[0], case.payload, fresh)
                counts[name] = fresh.request_count - before
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--refer", type=int, default=100)
    parser.add_argument("--worklist", type=int, default=1000)
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "servers-last-run.json")
    args = parser.parse_args()
    results: dict[str, Any] = {}
    with ExitStack() as stack:
        embedded = stack.enter_context(EmbeddedServer())
        medplum = stack.enter_context(MedplumServer())
        bases = {"embedded": embedded.base_url, "medplum": medplum.base_url}
        if nginx.available():
            inner = urlsplit(embedded.base_url)
            bases["embedded via nginx"] = stack.enter_context(
                nginx.NginxProxy(inner.netloc, inner.path)
            ).base_url
        for name, base in bases.items():
            started = time.perf_counter()
            results[name] = {
                "learning_requests": learn(base),
                "requests_per_workflow": workflow_requests(base),
                "refer": single.bench_refer(base, args.refer, tag=name.replace(" ", "-")),
                "worklist": single.bench_worklist(base, args.worklist),
                "seconds": round(time.perf_counter() - started, 1),
            }
    args.json.write_text(json.dumps(results, indent=2, sort_keys=True))
    names = list(results)
    print(f"{'':38}" + "".join(f"{n:>20}" for n in names))
    print(
        f"{'one-time learning (requests)':38}"
        + "".join(f"{results[n]['learning_requests']:>20}" for n in names)
    )
    for workflow in sorted(CASES):
        print(
            f"{'requests: ' + workflow:38}"
            + "".join(f"{results[n]['requests_per_workflow'][workflow]:>20}" for n in names)
        )
    rows = [
        (
            "refer+plan requests fhircare / naive",
            lambda r: (
                f"{r['refer']['fhircare_requests_per_run']:.0f} / {r['refer']['naive_requests_per_run']:.0f}"
            ),
        ),
        (
            "refer+plan ms fhircare / naive",
            lambda r: f"{r['refer']['fhircare_ms_per_run']:.1f} / {r['refer']['naive_ms_per_run']:.1f}",
        ),
        (
            "refer+plan wall ratio naive/fhircare",
            lambda r: f"{r['refer']['wall_time_ratio_naive_over_fhircare']:.2f}",
        ),
        (
            f"worklist {args.worklist}: requests (N+1)",
            lambda r: f"{r['worklist']['fhircare_requests']} ({r['worklist']['naive_requests']})",
        ),
        (
            f"worklist {args.worklist}: s (N+1 s)",
            lambda r: f"{r['worklist']['fhircare_seconds']:.2f} ({r['worklist']['naive_seconds']:.2f})",
        ),
    ]
    for label, cell in rows:
        print(f"{label:38}" + "".join(f"{cell(results[n]):>20}" for n in names))


if __name__ == "__main__":
    main()
