"""A fault-injecting HTTP proxy for tests (standard library only).

It sits between fhircare and the embedded FHIR server and, per request, either forwards it or
injects one scripted fault:

  "503" / "429"   answer at once with that status and ``Retry-After: 0``, without forwarding
  "drop"          forward, let the server commit, then close the connection without answering
  "delay"         wait longer than the client's read timeout, then forward (the server commits late)
  "reset"         close the connection at once, without forwarding

Faults are queued per matching rule: ``proxy.inject("drop", method="POST", path="/fhir", times=1)``.
"""

from __future__ import annotations

import http.client
import socket
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

HOP_HEADERS = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "proxy-connection",
}


@dataclass
class Rule:
    fault: str
    method: str | None
    path: str | None
    times: int
    delay: float = 0.0
    skip: int = 0  # let this many matching requests through first


@dataclass
class ProxyLog:
    seen: list[tuple[str, str, str]] = field(default_factory=list)  # (method, path, what happened)


class FaultProxy:
    def __init__(self, upstream_base: str) -> None:
        parts = urlsplit(upstream_base)
        self.upstream_host = parts.hostname or "127.0.0.1"
        self.upstream_port = parts.port or 80
        self.upstream_path = parts.path.rstrip("/")
        self.rules: list[Rule] = []
        self.log = ProxyLog()
        self._lock = threading.Lock()
        self._in_flight = 0
        self._idle = threading.Condition(self._lock)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # quiet
                return

            def _handle(self) -> None:
                proxy.handle(self)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{self.upstream_path}"

    def start(self) -> FaultProxy:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def inject(
        self,
        fault: str,
        method: str | None = None,
        path: str | None = None,
        times: int = 1,
        delay: float = 0.0,
        skip: int = 0,
    ) -> None:
        with self._lock:
            self.rules.append(Rule(fault, method, path, times, delay, skip))

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()
            self.log = ProxyLog()

    def _take(self, method: str, path: str) -> Rule | None:
        with self._lock:
            for rule in self.rules:
                if (
                    rule.times > 0
                    and (rule.method in (None, method))
                    and (rule.path is None or path.split("?")[0] == rule.path)
                ):
                    if rule.skip > 0:
                        rule.skip -= 1
                        continue
                    rule.times -= 1
                    return rule
        return None

    def wait_idle(self, timeout: float = 10.0) -> None:
        """Wait until no request is being handled (a delayed one has reached the server)."""
        with self._idle:
            self._idle.wait_for(lambda: self._in_flight == 0, timeout)

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        with self._lock:
            self._in_flight += 1
        try:
            self._handle_one(request)
        finally:
            with self._idle:
                self._in_flight -= 1
                self._idle.notify_all()

    def _handle_one(self, request: BaseHTTPRequestHandler) -> None:
        method, path = request.command, request.path
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else b""
        rule = self._take(method, path)
        what = rule.fault if rule else "forward"
        self.log.seen.append((method, path, what))
        if rule and rule.fault in ("503", "429"):
            payload = b'{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"transient","diagnostics":"injected"}]}'
            request.send_response(int(rule.fault))
            request.send_header("Retry-After", "0")
            request.send_header("Content-Type", "application/fhir+json")
            request.send_header("Content-Length", str(len(payload)))
            request.end_headers()
            request.wfile.write(payload)
            return
        if rule and rule.fault == "reset":
            _abort(request.connection)
            request.close_connection = True
            return
        if rule and rule.fault == "delay":
            time.sleep(rule.delay)
        try:
            status, headers, answer = self._forward(method, path, request, body)
        except OSError:
            _abort(request.connection)
            request.close_connection = True
            return
        if rule and rule.fault == "drop":
            _abort(request.connection)
            request.close_connection = True
            return
        try:
            request.send_response(status)
            for key, value in headers:
                if key.lower() not in HOP_HEADERS and key.lower() != "content-length":
                    request.send_header(key, value)
            request.send_header("Content-Length", str(len(answer)))
            request.end_headers()
            request.wfile.write(answer)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (its timeout): the server has committed all the same

    def _forward(
        self, method: str, path: str, request: BaseHTTPRequestHandler, body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        conn = http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=30)
        headers = {
            k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS and k.lower() != "host"
        }
        conn.request(method, path, body=body or None, headers=headers)
        response = conn.getresponse()
        answer = response.read()
        result = (response.status, response.getheaders(), answer)
        conn.close()
        return result

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _abort(sock: socket.socket) -> None:
    """Close with RST (SO_LINGER 0), so the client sees a reset rather than a clean end."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    except OSError:
        pass


@contextmanager
def fault_proxy(upstream_base: str) -> Iterator[FaultProxy]:
    with FaultProxy(upstream_base) as proxy:
        yield proxy
