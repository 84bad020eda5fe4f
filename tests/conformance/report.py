"""Counts per rule on a demo run (embedded server) and on the golden cases.

.venv/bin/python -m tests.conformance.report [--patients 60] [--seed 7] [--details RULE]
"""

from __future__ import annotations

import argparse

from fhircare.fhir import FhirClient
from fhircare.server import EmbeddedServer

from .rules import RULES, applicable, failures
from .written import demo_written, golden_written


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--patients", type=int, default=60)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--details", default=None)
    args = parser.parse_args()
    with EmbeddedServer() as server, FhirClient(server.base_url) as client:
        demo = demo_written(client, args.patients, args.seed)
    golden = golden_written()
    demo_fail, golden_fail = failures(demo), failures(golden)
    demo_n, golden_n = applicable(demo), applicable(golden)
    print(f"{'rule':40} {'demo failing/checked':>22} {'golden failing/checked':>24}  source")
    for rule in RULES:
        print(
            f"{rule.id:40} {len(demo_fail[rule.id]):>10}/{demo_n[rule.id]:<11} "
            f"{len(golden_fail[rule.id]):>12}/{golden_n[rule.id]:<11} {rule.source}"
        )
    if args.details:
        for line in demo_fail[args.details] + golden_fail[args.details]:
            print(" ", line)


if __name__ == "__main__":
    main()
