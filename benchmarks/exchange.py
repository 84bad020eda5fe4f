"""Closed-loop referrals between two servers: request counts and memory of ``fhircare sync``.

    python benchmarks/exchange.py [--open 500 5000] [--changes 20] [--partner embedded|medplum]
                                  [--json benchmarks/exchange-last-run.json]

Ours is an embedded server; the partner is a second embedded server (or Medplum's router), each in its
own process, so the heap measured is the worker's alone. Requests are counted by the worker's two clients
(every page and read; no faults are injected here, so nothing is retried).
Reported, never asserted:

- idle cycle: requests to the partner and to our server for one ``sync`` cycle with nothing new, at each
  number of open (sent, unchanged) referrals - the claim is one partner search whatever the number;
- per remote change: a performer change (accept) on each of ``--changes`` referrals, then one cycle:
  requests per change, and the same for a completion with a Procedure after accept and start (3
  versions per referral, replayed from history);
- requests per hour at 500 open referrals: fhircare polling every 15 minutes against the reference
  implementations' approach (GET every tracked Task every 10 s), from the measured idle cycle plus the
  sync state's ``polled-at`` write (at most once per ``POLLED_AT_EVERY``, one hour);
- ``exchange status`` with 500 Tasks owned by the partner of which 5 were sent: our server's requests
  paging through every owned Task (before a cycle indexed the links) and by the sent-to identifier;
- notification latency (embedded partner; the router has no subscription engine): a performer's change
  to our Task updated, woken by the partner's rest-hook while polling is hourly (median, p95);
- memory: the peak Python heap (tracemalloc) of the first full catch-up, and what an idle cycle adds
  above the heap held before it, at each number of open referrals (pages are streamed, so neither
  should grow with the count beyond the process's bounded caches).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import tracemalloc
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fhircare.exchange import Exchange, parse_partners, referrals, send, sync_partner, work
from fhircare.exchange.cursor import POLLED_AT_EVERY
from fhircare.fhir import FhirClient
from fhircare.settings import Settings
from fhircare.workflows import run
from tests.support.cases import referral_payload
from tests.support.clock import day

HERE = Path(__file__).resolve().parent


def _make(client: FhirClient, resource: dict[str, Any]) -> str:
    created = client.create(resource)
    return f"{created['resourceType']}/{created['id']}"


class Pair:
    """Our server, the partner's, one partner configuration (fresh names per scenario)."""

    def __init__(self, ours: Any, theirs: Any, overlap: str) -> None:
        self.ours_server, self.theirs_server = ours, theirs
        self.ours = FhirClient(ours.base_url)
        self.theirs = FhirClient(theirs.base_url)
        uid = uuid.uuid4().hex[:8]
        self.clinic = _make(self.ours, {"resourceType": "Organization", "name": f"Clinic {uid}"})
        self.org = _make(self.ours, {"resourceType": "Organization", "name": f"Partner {uid}"})
        self.patient = _make(self.ours, {"resourceType": "Patient", "name": [{"family": f"Bench{uid}"}]})
        self.coordinator = _make(self.ours, {"resourceType": "Practitioner", "name": [{"family": "Coord"}]})
        self.name = f"p-{uid}"
        document = {
            "self": {"base": ours.base_url, "organization": self.clinic},
            "partners": {
                self.name: {
                    "organization": self.org,
                    "base": theirs.base_url,
                    "poll": "15m",
                    "overlap": overlap,
                }
            },
        }
        settings = Settings.from_env({}, base_url=ours.base_url)
        self.exchange = Exchange(settings, parse_partners(document, "bench"), self.ours)
        self.partner = self.exchange.partners.get(self.name)

    def counts(self) -> tuple[int, int]:
        return self.ours.request_count, self.exchange.remote(self.name).request_count

    def cycle(self) -> tuple[int, int, dict[str, Any]]:
        before = self.counts()
        report = sync_partner(self.exchange, self.partner).to_json()
        after = self.counts()
        return after[0] - before[0], after[1] - before[1], report

    def bulk_tasks(self, count: int, status: str = "requested") -> None:
        """``count`` referral Tasks owned by the partner (open: sent by a cycle), 100 to a transaction."""
        for start in range(0, count, 100):
            entries = [
                {
                    "resource": {
                        "resourceType": "Task",
                        "status": status,
                        "intent": "order",
                        "description": f"bench {start + i}",
                        "for": {"reference": self.patient},
                        "requester": {"reference": self.coordinator},
                        "owner": {"reference": self.org},
                    },
                    "request": {"method": "POST", "url": "Task"},
                }
                for i in range(min(100, count - start))
            ]
            self.ours.transaction({"resourceType": "Bundle", "type": "transaction", "entry": entries})

    def refer(self, n: int) -> str:
        people = {"patient": self.patient, "org": self.org, "coordinator": self.coordinator}
        payload = referral_payload(people, "", due=day(14), note=f"bench {n} {uuid.uuid4().hex[:6]}")
        return next(r for r in run("refer", payload, self.ours).written if r.startswith("Task/")).split("/")[
            1
        ]

    def remote_id(self, task_id: str) -> str:
        url = f"{self.exchange.partners.base}/Task/{task_id}"
        return str(self.theirs.search("Task", {"identifier": f"urn:ietf:rfc:3986|{url}"}).get()["id"])


def idle_and_memory(ours: Any, theirs: Any, open_count: int) -> dict[str, Any]:
    pair = Pair(ours, theirs, overlap="1s")
    pair.bulk_tasks(open_count)
    # the heap a cycle adds above what was held before it (caches the process keeps, bounded, excluded)
    tracemalloc.start()
    started = time.perf_counter()
    local, remote, report = pair.cycle()  # sends all, then the catch-up poll
    first_peak = tracemalloc.get_traced_memory()[1]
    time.sleep(1.5)  # past the overlap: the next cycles find nothing new
    pair.cycle()  # moves our unsent-search cursor over the Tasks the first cycle linked
    time.sleep(1.5)
    held = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    idle_local, idle_remote, _ = pair.cycle()
    idle_peak = tracemalloc.get_traced_memory()[1] - held
    tracemalloc.stop()
    return {
        "open_referrals": open_count,
        "sent": report["sent"],
        "first_cycle_s": round(time.perf_counter() - started, 1),
        "first_cycle_requests": {"ours": local, "partner": remote},
        "idle_cycle_requests": {"ours": idle_local, "partner": idle_remote},
        "first_cycle_peak_kib": round(first_peak / 1024),
        "idle_cycle_peak_kib": round(idle_peak / 1024),
    }


def status_requests(ours: Any, theirs: Any, owned: int = 500, sent: int = 5) -> dict[str, Any]:
    """``exchange status`` with ``owned`` Tasks owned by the partner of which ``sent`` were sent: our
    server's requests paging through every owned Task (no cycle has indexed the links yet: what every
    status cost before the sent-to identifier) and searching by the identifier (after one cycle)."""
    pair = Pair(ours, theirs, overlap="1s")
    pair.bulk_tasks(owned - sent, status="draft")  # owned, never sent
    for n in range(sent):
        send(pair.exchange, pair.refer(n))

    def measured() -> tuple[int, int]:
        before = pair.ours.request_count
        rows = referrals(pair.exchange, pair.name)
        return len(rows), pair.ours.request_count - before

    scan_rows, scan = measured()
    pair.cycle()
    rows, indexed = measured()
    assert scan_rows == rows == sent
    return {"owned": owned, "sent": sent, "owner_scan": scan, "sent_to_identifier": indexed}


def per_change(ours: Any, theirs: Any, changes: int) -> dict[str, Any]:
    pair = Pair(ours, theirs, overlap="1s")
    tasks = [pair.refer(n) for n in range(changes)]
    pair.cycle()
    remote = {t: pair.remote_id(t) for t in tasks}
    time.sleep(1.5)
    pair.cycle()
    for task in tasks:
        work(pair.theirs, remote[task], "accepted")
    local, partner, report = pair.cycle()
    one = {
        "applied": report["applied"],
        "requests_per_change": round((local + partner) / changes, 2),
        "ours": local,
        "partner": partner,
    }
    for task in tasks:
        work(pair.theirs, remote[task], "in-progress")
        work(pair.theirs, remote[task], "completed", outcome="Done")
    local, partner, report = pair.cycle()
    versions = report["applied"]
    three = {
        "applied": versions,
        "requests_per_change": round((local + partner) / max(versions, 1), 2),
        "ours": local,
        "partner": partner,
    }
    return {
        "referrals": changes,
        "one_version_each": one,
        "two_versions_each_with_procedure": three,
        "completion_marginal_requests": completion_marginal(ours, theirs, changes),
    }


def completion_marginal(ours: Any, theirs: Any, changes: int) -> float:
    """Requests one more completion (a single new version with a Procedure) adds to a cycle: the cost
    of a cycle completing 2n referrals minus one completing n, over n (the shared search, batch read
    and state write cancel out)."""
    totals = []
    for count in (changes, 2 * changes):
        pair = Pair(ours, theirs, overlap="1s")
        tasks = [pair.refer(n) for n in range(count)]
        pair.cycle()
        for task in tasks:
            remote = pair.remote_id(task)
            work(pair.theirs, remote, "accepted")
            work(pair.theirs, remote, "in-progress")
        time.sleep(1.5)
        pair.cycle()
        for task in tasks:
            work(pair.theirs, pair.remote_id(task), "completed", outcome="Done")
        local, partner, _ = pair.cycle()
        totals.append(local + partner)
    return round((totals[1] - totals[0]) / changes, 2)


def notification_latency(ours: Any, theirs: Any, count: int) -> dict[str, Any]:
    """Performer change -> our Task updated, woken by the partner's rest-hook (polling hourly)."""
    import statistics
    import threading
    from dataclasses import replace
    from datetime import timedelta

    from fhircare.exchange.listen import Worker, make_server
    from fhircare.exchange.notify import subscribe
    from fhircare.server.launcher import free_port

    pair = Pair(ours, theirs, overlap="5m")
    partner = replace(pair.partner, notify_secret_env="BENCH_HOOK_TOKEN", poll=timedelta(hours=1))
    settings = replace(pair.exchange.settings, partner_tokens=(("BENCH_HOOK_TOKEN", "bench-secret"),))
    exchange = Exchange(settings, replace(pair.exchange.partners, partners={pair.name: partner}), pair.ours)
    worker = Worker(exchange, [pair.name])
    port = free_port()
    server = make_server(worker, "127.0.0.1", port)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    tasks = [pair.refer(n) for n in range(count)]
    threading.Thread(target=worker.run, daemon=True).start()
    while sync_state_sent(pair, tasks) < count:
        time.sleep(0.05)
    made = subscribe(exchange, pair.name, f"http://127.0.0.1:{port}")
    sid = made["subscription"].rsplit("/", 1)[1]
    while pair.theirs.read("Subscription", sid).get("status") != "active":
        time.sleep(0.05)
    delays = []
    for task in tasks:
        started = time.perf_counter()
        work(pair.theirs, pair.remote_id(task), "accepted")
        while pair.ours.read("Task", task)["status"] != "accepted":
            time.sleep(0.01)
        delays.append(time.perf_counter() - started)
    worker.stop.set()
    worker.wake.set()
    server.shutdown()
    delays.sort()
    return {
        "changes": count,
        "median_ms": round(1000 * statistics.median(delays), 1),
        "p95_ms": round(1000 * delays[max(0, int(0.95 * len(delays)) - 1)], 1),
    }


def sync_state_sent(pair: Pair, tasks: list[str]) -> int:
    from fhircare.exchange.links import read_link

    return sum(read_link(pair.ours.read("Task", t), pair.exchange.namespace_base) is not None for t in tasks)


class ServerProcess:
    """``fhircare server start`` in a child process (its CPU and heap are not the worker's)."""

    def __init__(self) -> None:
        from fhircare.server.launcher import free_port

        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/fhir"
        self.process: Any = None

    def __enter__(self) -> ServerProcess:
        import subprocess
        import urllib.request

        command = [sys.executable, "-m", "fhircare.cli.main", "server", "start", "--port", str(self.port)]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.base_url}/metadata", timeout=2):
                    return self
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("the embedded server did not start")

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        self.process.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--open", type=int, nargs="+", default=[500, 5000])
    parser.add_argument("--changes", type=int, default=20)
    parser.add_argument("--notifications", type=int, default=20, help="changes timed through the hook")
    parser.add_argument("--partner", choices=["embedded", "medplum"], default="embedded")
    parser.add_argument("--json", type=Path, default=HERE / "exchange-last-run.json")
    args = parser.parse_args()
    if args.partner == "medplum":
        from tests.servers.medplum import MedplumServer

        theirs: Any = MedplumServer()
    else:
        theirs = ServerProcess()
    with ServerProcess() as ours, theirs:
        results: dict[str, Any] = {"partner": args.partner}
        results["idle"] = [idle_and_memory(ours, theirs, n) for n in args.open]
        results["per_change"] = per_change(ours, theirs, args.changes)
        results["status_500_owned_5_sent"] = status_requests(ours, theirs)
        if args.partner == "embedded" and args.notifications:  # the router has no subscription engine
            results["notification_latency"] = notification_latency(ours, theirs, args.notifications)
    idle_500 = next((r for r in results["idle"] if r["open_referrals"] == 500), results["idle"][0])
    per_cycle = idle_500["idle_cycle_requests"]["ours"] + idle_500["idle_cycle_requests"]["partner"]
    polled_at_writes = round(3600 / POLLED_AT_EVERY.total_seconds())  # the sync state, once an hour
    results["requests_per_hour_at_500"] = {
        "fhircare_poll_15m": 4 * per_cycle + polled_at_writes,
        "fhircare_poll_15m_partner_only": 4 * idle_500["idle_cycle_requests"]["partner"],
        "reference_get_each_task_every_10s": 500 * 360,
    }
    text = json.dumps(results, indent=2)
    print(text)
    args.json.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
