"""``fhircare sync --listen``: the worker loop, the partners' notification hook, /metrics and /readyz.

The loop polls each partner every ``poll``; a notification with the partner's secret only wakes that
partner's cycle early (a wrong secret: 401, nothing runs). The partner and its secret are checked from
the headers before any of the body is read; the body must announce its length (at most
MAX_NOTIFICATION); every read waits at most READ_TIMEOUT; at most MAX_CONNECTIONS are served at once. ``/readyz`` fails once a partner has been
unreachable for longer than ``unready_after`` (default one hour: two missed polls at the guide's
business-hours rate, long enough that a partner's maintenance window pages nobody at 15-minute polls).
"""

from __future__ import annotations

import io
import json
import logging
import socket
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
#: seconds any read of a request may wait (its line, headers, body): a caller that stops sending is dropped
READ_TIMEOUT = 5.0
#: seconds a whole request (line, headers, body) may take, however slowly it comes
REQUEST_DEADLINE = 15.0
#: connections served at once (one thread each); more wait for none: 503 and closed
MAX_CONNECTIONS = 32
BUSY = b"HTTP/1.0 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


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
        timeout = READ_TIMEOUT  # every read of a request on its socket: its line, headers and body

        def setup(self) -> None:
            super().setup()  # and the whole request within REQUEST_DEADLINE, however slowly it drips
            self.rfile.close()  # the socket's own reader: replaced by one that keeps the deadline
            self.rfile = io.BufferedReader(_Deadline(self.connection, REQUEST_DEADLINE))

        def log_message(self, *args: object) -> None:  # no request lines (paths name partners only)
            return

        def _answer(self, status: int, body: bytes, kind: str = "application/json") -> None:
            self.connection.settimeout(READ_TIMEOUT)
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
            # the partner and its secret first, from the headers alone: nothing of the body is read
            # before the caller is known, and an unknown or refused caller's body is never read
            self.close_connection = True
            parts = self.path.split("?")[0].strip("/").split("/")
            if len(parts) < 2 or parts[0] != "hook" or parts[1] not in worker.exchange.partners.partners:
                self._answer(404, _outcome("not-found", "no such hook"))
                return
            name = parts[1]
            secret = partner_secret(worker.exchange, worker.exchange.partners.get(name))
            if not secret_matches(secret, self.headers.get("Authorization")):
                worker.metrics.notifications.labels(name, "refused").inc()
                self._answer(401, _outcome("login", "wrong or missing secret"))
                return
            refused = _length_refused(self.headers)
            if refused is not None:
                self._answer(*refused)
                return
            try:  # the content is a hint only: never applied; read (within the timeout) and dropped
                self.rfile.read(int(self.headers["Content-Length"]))
            except OSError:  # too slow (TimeoutError) or gone: the connection is dropped
                return
            worker.metrics.notifications.labels(name, "accepted").inc()
            worker.notify(name)
            self._answer(200, b"{}")

        do_POST = do_PUT = _hook

    return _BoundedServer((host, port), Handler)


def _length_refused(headers: Any) -> tuple[int, bytes] | None:
    """A notification's body must announce its length (0 to MAX_NOTIFICATION): else the answer."""
    if headers.get("Transfer-Encoding") or headers.get("Content-Length") is None:
        return 411, _outcome("structure", "a notification must carry Content-Length")
    length = str(headers["Content-Length"]).strip()
    if not (length.isascii() and length.isdigit()):  # a negative, signed or non-numeric length
        return 400, _outcome("structure", "Content-Length is not a length")
    if int(length) > MAX_NOTIFICATION:
        return 413, _outcome("too-long", "notification too large")
    return None


class _Deadline(io.RawIOBase):
    """A socket's reads, each waiting at most READ_TIMEOUT and all of them ending by a deadline."""

    def __init__(self, sock: socket.socket, seconds: float) -> None:
        self.sock = sock
        self.ends = time.monotonic() + seconds

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        left = self.ends - time.monotonic()
        if left <= 0:
            raise TimeoutError("the request took too long")
        self.sock.settimeout(min(left, READ_TIMEOUT))
        return self.sock.recv_into(buffer)


class _BoundedServer(ThreadingHTTPServer):
    """One thread per connection, at most MAX_CONNECTIONS at once: past that a connection is answered
    503 (Retry-After) and closed at once, so slow or hostile callers cannot take every thread."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(address, handler)
        self.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.slots.acquire(blocking=False):
            try:
                request.settimeout(1)
                request.sendall(BUSY)
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A connection that failed mid-answer (gone, too slow): one line, no traceback, no content."""
        log.warning("hook connection dropped", exc_info=False)


def _outcome(code: str, text: str) -> bytes:
    issue = {"severity": "error", "code": code, "diagnostics": text}
    return json.dumps({"resourceType": "OperationOutcome", "issue": [issue]}).encode()
