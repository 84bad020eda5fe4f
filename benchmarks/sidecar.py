"""Requests/s of POST /api/v1/workflows/refer through gunicorn (2 workers) against the embedded server,
and the same referrals through the library directly (same concurrency). Prints JSON; asserts nothing.

    python benchmarks/sidecar.py [--requests 400] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fhircare.fhir import FhirClient
from fhircare.server.launcher import free_port
from fhircare.workflows import run
from tests.support.clock import day


def _payloads(client: FhirClient, count: int, tag: str) -> list[dict[str, object]]:
    def make(resource: dict[str, object]) -> str:
        created = client.create(resource)
        return f"{created['resourceType']}/{created['id']}"

    patient = make({"resourceType": "Patient", "name": [{"family": "Bench"}]})
    coordinator = make({"resourceType": "Practitioner", "name": [{"family": "Coord"}]})
    program = make({"resourceType": "Organization", "name": "Program"})
    base = {
        "patient": patient,
        "service": "diabetes-education",
        "performer": program,
        "requester": coordinator,
        "reason": "diabetes",
        "priority": "routine",
        "due": day(3),
    }
    return [{**base, "request_id": f"{tag}-{i}"} for i in range(count)]


class ServerProcess:
    def __init__(self) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/fhir"

    def __enter__(self) -> ServerProcess:
        fhircare = str(Path(sys.executable).with_name("fhircare"))
        self.process = subprocess.Popen(
            [fhircare, "server", "start", "--port", str(self.port)], stdout=subprocess.DEVNULL
        )
        for _ in range(200):
            try:
                requests.get(f"{self.base_url}/metadata", timeout=1)
                return self
            except requests.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("the FHIR server did not start")

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        self.process.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    # the FHIR server runs in its own process, so neither side shares an interpreter with it
    with ServerProcess() as server:
        setup = FhirClient(server.base_url)
        port = free_port()
        env = {**os.environ, "FHIRCARE_BASE_URL": server.base_url, "FHIRCARE_BIND_HOST": "127.0.0.1"}
        process = subprocess.Popen(
            [
                gunicorn,
                "-w",
                "2",
                "-k",
                "gthread",
                "--threads",
                "4",
                "-b",
                f"127.0.0.1:{port}",
                "fhircare.web.wsgi:app()",
            ],
            env=env,
            stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(100):
                try:
                    requests.get(f"{url}/healthz", timeout=1)
                    break
                except requests.ConnectionError:
                    time.sleep(0.1)
            bodies = _payloads(setup, args.requests, "http")
            session = requests.Session()
            started = time.perf_counter()
            with ThreadPoolExecutor(args.concurrency) as pool:
                statuses = list(
                    pool.map(
                        lambda b: (
                            session.post(f"{url}/api/v1/workflows/refer", json=b, timeout=60).status_code
                        ),
                        bodies,
                    )
                )
            http_seconds = time.perf_counter() - started
        finally:
            process.terminate()
            process.wait(10)
        direct = _payloads(setup, args.requests, "lib")
        started = time.perf_counter()
        with ThreadPoolExecutor(args.concurrency) as pool:
            clients = [FhirClient(server.base_url) for _ in range(args.concurrency)]
            list(
                pool.map(lambda ib: run("refer", ib[1], clients[ib[0] % args.concurrency]), enumerate(direct))
            )
        lib_seconds = time.perf_counter() - started
    print(
        json.dumps(
            {
                "requests": args.requests,
                "concurrency": args.concurrency,
                "created_201": statuses.count(201),
                "sidecar_requests_per_second": round(args.requests / http_seconds, 1),
                "library_runs_per_second": round(args.requests / lib_seconds, 1),
                "sidecar_over_library_time": round(http_seconds / lib_seconds, 2),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
