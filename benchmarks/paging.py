"""Adaptive paging against fixed page sizes: the worklist of 5,000 Tasks on the embedded server.

    python benchmarks/paging.py [--tasks 5000] [--rounds 3] [--json benchmarks/paging-last-run.json]

The server runs in its own process; variants run interleaved (one after the other in every round).
Fixed variants send ``_count=N`` and nothing else (as fhircare did before); ``adaptive`` is
``worklist()`` without a page size: a fresh client each round (what one CLI command gets: it learns
the server's cap and next links from its own first page) and ``adaptive, warm client`` (a sidecar's
long-lived client, which also sends ``_total=none`` once next links were seen to work). Reported:
median wall time, requests, client and server CPU, and each variant's ratio to the best fixed size.
Figures are reported, never asserted.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from peers import TODAY, Tally, seed_tasks, start_server

from fhircare.fhir import FhirClient, Page
from fhircare.fhir.search import PagingLimits
from fhircare.views.worklist import worklist

HERE = Path(__file__).resolve().parent
FIXED = (100, 250, 500, 1000)


class FixedPaging(PagingLimits):
    """The paging fhircare had before: the page size given, nothing learned, nothing else sent."""

    def __init__(self) -> None:
        super().__init__(elements=False)

    def learn(self, asked: int | None, page: Page, more: bool, elements: bool) -> None:
        return


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, default=HERE / "paging-last-run.json")
    args = parser.parse_args()
    process, base = start_server()
    try:
        owner = seed_tasks(FhirClient(base), args.tasks)
        fixed = FhirClient(base)
        fixed.paging = FixedPaging()
        warm = FhirClient(base)
        rows: set[int] = set()

        def fresh() -> int:
            with FhirClient(base) as client:
                return len(worklist(client, owners=[owner], today=TODAY))

        variants: dict[str, Callable[[], int]] = {
            **{
                f"fixed {size}": lambda size=size: len(
                    worklist(fixed, owners=[owner], today=TODAY, page_size=size)
                )
                for size in FIXED
            },
            "adaptive": fresh,
            "adaptive, warm client": lambda: len(worklist(warm, owners=[owner], today=TODAY)),
        }
        for run in variants.values():
            rows.add(run())  # warm-up: connections, the _include probe, what the warm client learns
        tallies = {name: Tally() for name in variants}
        for _ in range(args.rounds):
            for name, run in variants.items():
                tallies[name].measure(process.pid, run)
        results: dict[str, Any] = {name: tally.summary() for name, tally in tallies.items()}
        best = min(results[f"fixed {size}"]["ms"] for size in FIXED)
        for result in results.values():
            result["ratio_vs_best_fixed"] = round(result["ms"] / best, 2)
        learned = warm.paging
        results["learned"] = {
            "max_page_size": learned.learned_max,
            "next_links": learned.next_links,
            "elements": learned.elements,
            "rows": rows.pop() if len(rows) == 1 else -1,
        }
    finally:
        process.terminate()
        process.wait(20)
    width = max(len(name) for name in variants)
    print(f"{'variant'.ljust(width)}  requests  ms (median)  client CPU ms  server CPU ms  vs best fixed")
    for name in variants:
        r = results[name]
        print(
            f"{name.ljust(width)}  {r['requests']!s:8}  {r['ms']!s:11}  {r['client_cpu_ms']!s:13}  "
            f"{r['server_cpu_ms']!s:13}  {r['ratio_vs_best_fixed']}"
        )
    print(f"learned: {results['learned']}")
    command = " ".join(sys.argv)
    args.json.write_text(
        json.dumps({"command": command, "tasks": args.tasks, "results": results}, indent=2) + "\n"
    )
    print(f"\nwritten to {args.json}")


if __name__ == "__main__":
    main()
