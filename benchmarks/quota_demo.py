"""``fhircare demo --patients N`` against Medplum's FHIR router with a points quota modelled on the full
Medplum server's (tests/servers/medplum/quota.mjs: a read 1 point, a history 10, a search 20, a write
100, per request or per bundle entry; over the window's points, batch entries answered ``429`` and a
whole request ``429``). Reported, never asserted: the reproducible form of "demo --patients 200
completes against a Medplum-like quota".

    python benchmarks/quota_demo.py [--patients 200] [--points 50000] [--window 6] [--json FILE]

Two variants on one server: ``atomic`` (a project with transaction-bundles: a transaction over the quota
is refused whole) and ``non-atomic`` (a project without it: transactions applied entry by entry, the
throttled rest answered ``429`` per entry). Each is a fresh caseload (the server reset, a fresh window)
through the ``fhircare`` console script, as a user runs it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.servers.medplum import MedplumServer  # noqa: E402

FHIRCARE = str(Path(sys.executable).with_name("fhircare"))
#: the bearer token naming the Medplum project without transaction-bundles
NON_ATOMIC = "project-without-transaction-bundles"
VARIANTS = {"atomic": {}, "non-atomic": {"FHIRCARE_BEARER_TOKEN": NON_ATOMIC}}


def run_demo(
    server: MedplumServer, patients: int, seed: int, env: dict[str, str], timeout: float
) -> dict[str, Any]:
    """One demo run on a fresh server state; what it cost and how it ended."""
    requests_before = server.counter.count
    refused_before = int(server.quota().get("refused") or 0)
    started = time.perf_counter()
    try:
        done = subprocess.run(
            [FHIRCARE, "demo", "--patients", str(patients), "--seed", str(seed), "--base", server.base_url],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env={**os.environ, **env},
        )
        exit_code, output = done.returncode, done.stdout + done.stderr
    except subprocess.TimeoutExpired as exc:
        exit_code, output = None, str(exc.stdout or "") + str(exc.stderr or "")
    seconds = time.perf_counter() - started
    quota = server.quota()
    return {
        "patients": patients,
        "seconds": round(seconds, 1),
        "requests": server.counter.count - requests_before,
        "throttled_waited_out": int(quota.get("refused") or 0) - refused_before,
        "exit_code": exit_code,
        "seeded": f"Seeded {patients} patients" in output,
        "patients_on_server": server.resource_counts().get("Patient", 0),  # read apart from the demo
        "false_missing": "name nothing on the server" in output,
        "tail": "" if exit_code == 0 else output[-600:],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--patients", type=int, default=200)
    parser.add_argument("--points", type=int, default=50_000, help="quota points per window")
    parser.add_argument(
        "--window", type=float, default=6.0, help="quota window, seconds (60 on the full server)"
    )
    parser.add_argument("--variant", choices=sorted(VARIANTS), action="append", help="default: both")
    parser.add_argument("--seed", type=int, default=41)
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per demo run")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "quota-demo-last-run.json")
    args = parser.parse_args()
    results: dict[str, Any] = {
        "command": "python benchmarks/quota_demo.py " + " ".join(sys.argv[1:]),
        "quota": {"points": args.points, "window_s": args.window},
    }
    with MedplumServer(projects={NON_ATOMIC: "batch"}) as server:
        for n, name in enumerate(args.variant or sorted(VARIANTS)):
            server.reset()
            server.set_quota(args.points, args.window)  # a fresh window for each run
            results[name] = run_demo(server, args.patients, args.seed + n, VARIANTS[name], args.timeout)
            server.set_quota(None)
            print(name, json.dumps(results[name]), file=sys.stderr, flush=True)
    text = json.dumps(results, indent=2, sort_keys=True)
    print(text)
    args.json.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
