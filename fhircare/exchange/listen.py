"""``fhircare sync --listen``: the worker loop, the partners' notification hook, /metrics and /readyz.

The loop polls each partner every ``poll``; a notification with the partner's secret only wakes that
partner's cycle early (a wrong secret: 401, nothing runs). ``/readyz`` fails once a partner has been
unreachable for longer than ``unready_after`` (default one hour: two missed polls at the guide's
business-hours rate, long enough that a partner's maintenance window pages nobody at 15-minute polls).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ..errors import FhircareError
from .context import Exchange
from .metrics import ExchangeMetrics
from .notify import partner_secret, secret_matches, watch
from .sync import sync_partner

log = logging.getLogger("fhircare.exchange")

MAX_NOTIFICATION = 1 << 20


class Worker:
    """Sync cycles per partner: on schedule, or woken by a notification."""

    def __init__(
        self, exchange: Exchange, names: list[str], unready_after: timedelta = timedelta(hours=1)
    ) -> None:
        self.exchange = exchange
        self.names = names
        self.metrics = ExchangeMetrics()
        self.metrics.count_requests(exchange.local, "ours")
        self.unready_after = unready_after
        self.wake = threading.Event()
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self._woken: set[str] = set()
        self.down_since: dict[str, float] = {}
        self.started = time.monotonic()
        self.heard: dict[str, float] = {}  # when each partner's last notification (or heartbeat) came

    def notify(self, name: str) -> None:
        self.heard[name] = time.monotonic()
        with self._lock:
            self._woken.add(name)
        self.wake.set()

    def ready(self) -> tuple[bool, dict[str, Any]]:
        now = time.monotonic()
        late = {
            n: round(now - t)
            for n, t in self.down_since.items()
            if now - t > self.unready_after.total_seconds()
        }
        return not late, {"unreachable_seconds": late}

    def cycle(self, name: str, trigger: str) -> dict[str, Any]:
        partner = self.exchange.partners.get(name)
        if name not in self.exchange.remotes:
            self.metrics.count_requests(self.exchange.remote(name), name)
        try:
            cycle = sync_partner(self.exchange, partner)
            report = cycle.to_json()
            if trigger == "schedule" and cycle.reachable and partner.notify != "poll":
                silent = time.monotonic() - self.heard.get(name, self.started)
                report["subscription"] = watch(self.exchange, partner, cycle.subscription, silent)
        except FhircareError as exc:
            log.error("sync cycle failed", extra={"partner": name, "error": type(exc).__name__})
            self.metrics.errors.labels(name).inc()
            return {"error": type(exc).__name__}
        self.metrics.cycle(name, report, trigger)
        if report["reachable"]:
            self.down_since.pop(name, None)
        else:
            self.down_since.setdefault(name, time.monotonic())
        return report

    def run(self) -> None:
        due = dict.fromkeys(self.names, 0.0)
        while not self.stop.is_set():
            with self._lock:
                woken, self._woken = self._woken, set()
            for name in self.names:
                if name in woken or time.monotonic() >= due[name]:
                    trigger = "schedule" if time.monotonic() >= due[name] else "notification"
                    self.cycle(name, trigger)
                    if trigger == "schedule":
                        due[name] = time.monotonic() + self.exchange.partners.get(name).poll.total_seconds()
            self.wake.wait(max(0.05, min(due.values()) - time.monotonic()))
            self.wake.clear()


def make_server(worker: Worker, host: str, port: int) -> ThreadingHTTPServer:
    """The hook, /metrics, /readyz and /healthz on host:port (loopback unless told otherwise)."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # no request lines (paths name partners only)
            return

        def _answer(self, status: int, body: bytes, kind: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if self.path == "/metrics":
                body, kind = worker.metrics.render()
                self._answer(200, body, kind)
            elif self.path == "/readyz":
                ok, detail = worker.ready()
                self._answer(200 if ok else 503, json.dumps({"ready": ok, **detail}).encode())
            elif self.path == "/healthz":
                self._answer(200, b'{"ok": true}')
            else:
                self._answer(404, _outcome("not-found", "no such path"))

        def _hook(self) -> None:
            parts = self.path.split("?")[0].strip("/").split("/")
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_NOTIFICATION:
                self._answer(413, _outcome("too-long", "notification too large"))
                return
            self.rfile.read(length)  # the content is a hint only: never applied
            if len(parts) < 2 or parts[0] != "hook" or parts[1] not in worker.exchange.partners.partners:
                self._answer(404, _outcome("not-found", "no such hook"))
                return
            name = parts[1]
            secret = partner_secret(worker.exchange, worker.exchange.partners.get(name))
            if not secret_matches(secret, self.headers.get("Authorization")):
                worker.metrics.notifications.labels(name, "refused").inc()
                self._answer(401, _outcome("login", "wrong or missing secret"))
                return
            worker.metrics.notifications.labels(name, "accepted").inc()
            worker.notify(name)
            self._answer(200, b"{}")

        do_POST = do_PUT = _hook

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server


def _outcome(code: str, text: str) -> bytes:
    issue = {"severity": "error", "code": code, "diagnostics": text}
    return json.dumps({"resourceType": "OperationOutcome", "issue": [issue]}).encode()
