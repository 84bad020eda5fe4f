"""The demo's caseload at several sizes: seeding, worklist, gaps, caseload times and peak RSS, paging vs bulk.

    python benchmarks/scale.py [--sizes 60 600 2000] [--json benchmarks/scale-last-run.json]

Each size runs in its own process (the embedded server in it, as ``fhircare demo`` does), so peak RSS
(VmHWM: server and client together) belongs to that size alone. Seeding goes through the workflows,
exactly as the demo seeds. Views are timed once each on the seeded caseload; paging and Bulk Data
``$export`` answers are compared and must be equal. Figures are reported, never asserted.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

HERE = Path(__file__).resolve().parent


def peak_rss_mib() -> float:
    """The process's peak resident set so far (VmHWM), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def timed(client: Any, fn: Callable[[], Any]) -> tuple[Any, dict[str, float]]:
    before = client.request_count
    started = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - started
    return result, {"seconds": round(seconds, 3), "requests": client.request_count - before}


def one_size(patients: int, seed: int) -> dict[str, Any]:
    from fhircare import clock
    from fhircare.demo import Seeder
    from fhircare.fhir import FhirClient
    from fhircare.server import EmbeddedServer
    from fhircare.views.caseload import caseload
    from fhircare.views.gaps import find_gaps
    from fhircare.views.worklist import worklist

    today = clock.today()
    out: dict[str, Any] = {"patients": patients}
    with EmbeddedServer() as server, FhirClient(server.base_url) as client:
        started = time.perf_counter()
        world = Seeder(client, seed, today).seed_all(patients, lambda _: None)
        out["seed"] = {
            "seconds": round(time.perf_counter() - started, 1),
            "runs": world.runs,
            "requests": world.requests,
            "resources": sum(server.resource_counts().values()),
        }
        out["peak_rss_after_seed_mib"] = round(peak_rss_mib(), 1)
        coordinator = world.coordinators[0]
        rows, out["worklist"] = timed(client, lambda: worklist(client, owners=[coordinator], today=today))
        out["worklist"]["rows"] = len(rows)
        for scope, owner in (("gaps_owner", coordinator), ("gaps_all", None)):
            paged, out[f"{scope}_paging"] = timed(
                client, lambda o=owner: find_gaps(client, owner=o, today=today)
            )
            bulk, out[f"{scope}_bulk"] = timed(
                client, lambda o=owner: find_gaps(client, owner=o, today=today, bulk=True)
            )
            out[f"{scope}_paging"]["gaps"] = len(paged)
            out[f"{scope}_bulk"]["same_as_paging"] = [g.as_dict() for g in bulk] == [
                g.as_dict() for g in paged
            ]
        paged_rows, out["caseload_paging"] = timed(client, lambda: caseload(client, today=today))
        bulk_rows, out["caseload_bulk"] = timed(client, lambda: caseload(client, today=today, bulk=True))
        out["caseload_bulk"]["same_as_paging"] = [r.as_dict() for r in bulk_rows] == [
            r.as_dict() for r in paged_rows
        ]
    out["peak_rss_mib"] = round(peak_rss_mib(), 1)
    return out


ROWS = [
    ("seed s", lambda r: r["seed"]["seconds"]),
    ("seed requests", lambda r: r["seed"]["requests"]),
    ("resources", lambda r: r["seed"]["resources"]),
    ("worklist s (rows)", lambda r: f"{r['worklist']['seconds']} ({r['worklist']['rows']})"),
    ("gaps, 1 coordinator, paging s", lambda r: r["gaps_owner_paging"]["seconds"]),
    ("gaps, 1 coordinator, bulk s", lambda r: r["gaps_owner_bulk"]["seconds"]),
    (
        "gaps, everyone, paging s (gaps)",
        lambda r: f"{r['gaps_all_paging']['seconds']} ({r['gaps_all_paging']['gaps']})",
    ),
    ("gaps, everyone, bulk s", lambda r: r["gaps_all_bulk"]["seconds"]),
    (
        "gaps per patient, everyone, ms",
        lambda r: round(1000 * r["gaps_all_paging"]["seconds"] / r["patients"], 2),
    ),
    (
        "caseload paging s (requests)",
        lambda r: f"{r['caseload_paging']['seconds']} ({r['caseload_paging']['requests']})",
    ),
    (
        "caseload bulk s (requests)",
        lambda r: f"{r['caseload_bulk']['seconds']} ({r['caseload_bulk']['requests']})",
    ),
    (
        "bulk == paging",
        lambda r: all(r[k]["same_as_paging"] for k in ("gaps_owner_bulk", "gaps_all_bulk", "caseload_bulk")),
    ),
    ("peak RSS after seeding MiB", lambda r: r["peak_rss_after_seed_mib"]),
    ("peak RSS MiB", lambda r: r["peak_rss_mib"]),
]


def render(results: list[dict[str, Any]]) -> str:
    header = ["patients", *(str(r["patients"]) for r in results)]
    lines = [header] + [[name, *(str(get(r)) for r in results)] for name, get in ROWS]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)) for line in lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[60, 600, 2000])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", type=Path, default=HERE / "scale-last-run.json")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # a child run: one size, JSON on stdout
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_size(args.one, args.seed)))
        return
    results = []
    for size in args.sizes:
        print(f"-- {size} patients ...", file=sys.stderr, flush=True)
        child = subprocess.run(
            [sys.executable, __file__, "--one", str(size), "--seed", str(args.seed)],
            capture_output=True,
            text=True,
            check=True,
        )
        results.append(json.loads(child.stdout.strip().splitlines()[-1]))
        print(render(results[-1:]), file=sys.stderr, flush=True)
    print(render(results))
    args.json.write_text(json.dumps({"command": " ".join(sys.argv), "results": results}, indent=2) + "\n")
    print(f"\nwritten to {args.json}")


if __name__ == "__main__":
    main()
