"""A points quota in front of any FHIR server (standard library only): the full Medplum server's quota,
brought to a server that has none (the embedded one), the same way as tests/servers/medplum/quota.mjs
models it inside Medplum's router:

- a read costs 1 point, a history 10, a search 20, a write 100 (a conditional create 120), per
  request or per entry of a batch or transaction; the points of one fixed window are capped;
- a batch over the cap is answered HTTP 200: the entries that fit are forwarded (as a batch of their
  own), the first that does not and every one after it are answered ``429`` with Medplum's outcome
  (code ``throttled``, the limiter's state as JSON in the diagnostics), and the window stays closed;
- a transaction is atomic here: over the cap, it is answered HTTP 429 whole, nothing forwarded;
- ``deny`` answers chosen batch entries with a status of its own (401, 403, 404, 503, ...);
- any other request over the cap is answered HTTP 429 with ``Retry-After``; every answer carries
  ``RateLimit: "fhirInteractions";r=<points left>;t=<seconds to the reset>``.
"""

from __future__ import annotations

import http.client
import json
import math
import threading
import time
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.faults.proxy import HOP_HEADERS, FaultProxy

COST = {"read": 1, "history": 10, "search": 20, "write": 100}


def cost(method: str, url: str, if_none_exist: bool = False) -> int:
    """The points of one interaction (``url`` relative to the base, query included)."""
    method = method.upper()
    if method in ("POST", "PUT", "PATCH", "DELETE"):
        return COST["write"] + (COST["search"] if if_none_exist or "?" in url else 0)
    path = url.split("?")[0].strip("/")
    if "_history" in path:
        return COST["read"] if path.split("/")[-2] == "_history" else COST["history"]
    return COST["read"] if path.count("/") == 1 and "?" not in url else COST["search"]


class QuotaProxy(FaultProxy):
    """A FaultProxy that enforces a points quota (``set_quota(points, window_s)``; None: off)."""

    def __init__(self, upstream_base: str, clock: Any = time.monotonic) -> None:
        super().__init__(upstream_base)
        self.clock = clock
        self.points: int | None = None
        self.window_s = 60.0
        self.requests = 0  # requests received from clients
        self.refused = 0  # interactions refused since the quota was set
        #: batch entry URL -> the status the proxy answers it with itself (a per-entry fault)
        self.deny: dict[str, int] = {}
        self._quota_lock = threading.Lock()
        self._start: float | None = None
        self._used = 0
        self._blocked = False

    def set_quota(self, points: int | None, window_s: float = 60.0) -> None:
        with self._quota_lock:
            self.points, self.window_s = points, window_s
            self._start, self._used, self._blocked = None, 0, False
            self.refused = 0

    def _charge(self, points: int) -> bool:
        """Charge ``points`` to the current window; False (and the window closed) when they do not fit."""
        if self.points is None:
            return True
        now = self.clock()
        if self._start is None or now >= self._start + self.window_s:
            self._start, self._used, self._blocked = now, 0, False
        if self._blocked or self._used + points > self.points:
            self._blocked = True
            self.refused += 1
            return False
        self._used += points
        return True

    def _wait_ms(self) -> int:
        if self._start is None:
            return 0
        return max(0, round((self._start + self.window_s - self.clock()) * 1000))

    def _headers(self, status: int) -> dict[str, str]:
        if self.points is None:
            return {}
        left = 0 if self._blocked else max(0, self.points - self._used)
        seconds = math.ceil(self._wait_ms() / 1000)
        headers = {"RateLimit": f'"fhirInteractions";r={left};t={seconds}'}
        if status == 429:
            headers["Retry-After"] = str(max(1, seconds))
        return headers

    def _outcome(self) -> dict[str, Any]:
        state = {"_remainingPoints": 0, "_msBeforeNext": self._wait_ms(), "limit": self.points}
        issue = {
            "severity": "error",
            "code": "throttled",
            "details": {"text": "Too Many Requests"},
            "diagnostics": json.dumps(state),
        }
        return {"resourceType": "OperationOutcome", "id": "too-many-requests", "issue": [issue]}

    def _handle_one(self, request: BaseHTTPRequestHandler) -> None:
        method, path = request.command, request.path
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else b""
        self.requests += 1
        bundle = _bundle(method, path, self.upstream_path, body)
        with self._quota_lock:  # one request at a time: the window's arithmetic stays exact
            if path.split("?")[0].endswith("/metadata"):
                status, headers, answer = self._forward(method, path, request, body)
            elif bundle is not None and bundle.get("type") == "batch":
                status, headers, answer = self._batch(method, path, request, bundle)
            else:
                points = _bundle_cost(bundle) if bundle is not None else cost(method, _relative(path, self))
                if self._charge(points):
                    status, headers, answer = self._forward(method, path, request, body)
                else:
                    status, headers, answer = 429, [], json.dumps(self._outcome()).encode()
            headers = [(k, v) for k, v in headers if k.lower() not in ("ratelimit", "retry-after")]
            headers += list(self._headers(status).items())
        _reply(request, status, headers, answer)

    def _forward(
        self, method: str, path: str, request: BaseHTTPRequestHandler, body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        """As FaultProxy forwards, with the Content-Length of the body sent (a batch may be cut)."""
        conn = http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=30)
        skip = HOP_HEADERS | {"host", "content-length"}
        headers = {k: v for k, v in request.headers.items() if k.lower() not in skip}
        try:
            conn.request(method, path, body=body or None, headers=headers)
            response = conn.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            conn.close()

    def _batch(
        self, method: str, path: str, request: BaseHTTPRequestHandler, bundle: dict[str, Any]
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        entries = bundle.get("entry") or []
        answers: list[dict[str, Any] | None] = []
        for entry in entries:
            req = entry.get("request") or {}
            url = str(req.get("url", ""))
            if url in self.deny:  # an entry this proxy answers itself (403, 503, ...)
                answers.append(
                    {"response": {"status": str(self.deny[url]), "outcome": _denied(self.deny[url])}}
                )
            elif self._charge(cost(str(req.get("method", "GET")), url, bool(req.get("ifNoneExist")))):
                answers.append(None)  # forwarded
            else:
                answers.append({"response": {"status": "429", "outcome": self._outcome()}})
        forward = [entry for entry, answer in zip(entries, answers, strict=True) if answer is None]
        headers: list[tuple[str, str]] = [("Content-Type", "application/fhir+json")]
        if forward:
            sent = json.dumps({**bundle, "entry": forward}).encode()
            status, headers, raw = self._forward(method, path, request, sent)
            if status != 200:
                return status, headers, raw
            answered = iter(json.loads(raw).get("entry") or [])
            answers = [next(answered) if answer is None else answer for answer in answers]
        answer = {"resourceType": "Bundle", "type": "batch-response", "entry": answers}
        return 200, headers, json.dumps(answer).encode()


def _denied(status: int) -> dict[str, Any]:
    code = {401: "login", 403: "forbidden", 404: "not-found"}.get(status, "exception")
    issue = {"severity": "error", "code": code, "diagnostics": f"answered {status} by the test proxy"}
    return {"resourceType": "OperationOutcome", "issue": [issue]}


def _bundle(method: str, path: str, base_path: str, body: bytes) -> dict[str, Any] | None:
    if method != "POST" or path.split("?")[0].rstrip("/") != base_path or not body:
        return None
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) and parsed.get("resourceType") == "Bundle" else None


def _bundle_cost(bundle: dict[str, Any]) -> int:
    total = 0
    for entry in bundle.get("entry") or []:
        req = entry.get("request") or {}
        total += cost(str(req.get("method", "GET")), str(req.get("url", "")), bool(req.get("ifNoneExist")))
    return total


def _relative(path: str, proxy: FaultProxy) -> str:
    return path[len(proxy.upstream_path) :].lstrip("/") if path.startswith(proxy.upstream_path) else path


def _reply(
    request: BaseHTTPRequestHandler, status: int, headers: list[tuple[str, str]], answer: bytes
) -> None:
    try:
        request.send_response(status)
        for key, value in headers:
            if key.lower() not in HOP_HEADERS and key.lower() != "content-length":
                request.send_header(key, value)
        if not any(k.lower() == "content-type" for k, _ in headers):
            request.send_header("Content-Type", "application/fhir+json")
        request.send_header("Content-Length", str(len(answer)))
        request.end_headers()
        request.wfile.write(answer)
    except (BrokenPipeError, ConnectionResetError):
        pass
