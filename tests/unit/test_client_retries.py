"""Retries go through urllib3's Retry, so they are tested against a tiny scripted HTTP server on loopback
(``responses`` replaces the adapter and would skip the retry logic)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from fhircare.errors import TransientError
from fhircare.fhir import FhirClient

OK_TASK = (200, {}, {"resourceType": "Task", "id": "1"})
BUNDLE_OK = (
    200,
    {},
    {
        "resourceType": "Bundle",
        "type": "transaction-response",
        "entry": [{"response": {"status": "201 Created"}}],
    },
)


class Script:
    """Answers queued per request; records (method, path, time) of every request received."""

    def __init__(self) -> None:
        self.answers: list[tuple[int, dict[str, str], dict]] = []
        self.seen: list[tuple[str, str, float]] = []


@pytest.fixture()
def scripted() -> Iterator[tuple[str, Script]]:
    script = Script()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            return

        def _answer(self):
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            script.seen.append((self.command, self.path, time.monotonic()))
            status, headers, body = script.answers.pop(0) if script.answers else OK_TASK
            data = json.dumps(body).encode()
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Type", "application/fhir+json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = _answer

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/fhir", script
    server.shutdown()
    server.server_close()


def busy(status: int = 503, after: str = "1") -> tuple[int, dict[str, str], dict]:
    return (
        status,
        {"Retry-After": after},
        {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "transient"}]},
    )


def test_a_get_answered_503_with_retry_after_is_retried_after_waiting(scripted):
    base, script = scripted
    script.answers = [busy(503, "1"), OK_TASK]
    assert FhirClient(base, retries=2, backoff_factor=0).read("Task", "1")["id"] == "1"
    assert len(script.seen) == 2
    assert script.seen[1][2] - script.seen[0][2] >= 0.9  # Retry-After: 1 was honoured


def test_a_429_is_retried(scripted):
    base, script = scripted
    script.answers = [busy(429, "0"), OK_TASK]
    FhirClient(base, retries=2, backoff_factor=0).read("Task", "1")
    assert len(script.seen) == 2


def test_a_plain_post_is_not_retried(scripted):
    base, script = scripted
    script.answers = [busy(503, "0"), (201, {}, {"resourceType": "Task", "id": "2"})]
    with pytest.raises(TransientError):
        FhirClient(base, retries=2, backoff_factor=0).create({"resourceType": "Task"})
    assert len(script.seen) == 1


def test_a_conditional_create_is_retried(scripted):
    base, script = scripted
    script.answers = [busy(503, "0"), (201, {}, {"resourceType": "Task", "id": "2"})]
    created = FhirClient(base, retries=2, backoff_factor=0).create(
        {"resourceType": "Task"}, if_none_exist="identifier=a|b"
    )
    assert created["id"] == "2" and len(script.seen) == 2


def _bundle(conditional: bool) -> dict:
    request = {"method": "POST", "url": "Task", **({"ifNoneExist": "identifier=a|b"} if conditional else {})}
    return {"entry": [{"resource": {"resourceType": "Task"}, "request": request}]}


def test_a_transaction_whose_entries_are_all_conditional_is_retried(scripted):
    base, script = scripted
    script.answers = [busy(503, "0"), BUNDLE_OK]
    FhirClient(base, retries=2, backoff_factor=0).transaction(_bundle(conditional=True))
    assert len(script.seen) == 2


def test_a_transaction_with_a_plain_create_is_not_retried(scripted):
    base, script = scripted
    script.answers = [busy(503, "0"), BUNDLE_OK]
    with pytest.raises(TransientError):
        FhirClient(base, retries=2, backoff_factor=0).transaction(_bundle(conditional=False))
    assert len(script.seen) == 1


def test_retries_run_out_into_a_transient_error(scripted):
    base, script = scripted
    script.answers = [busy(503, "0")] * 3
    with pytest.raises(TransientError, match="HTTP 503"):
        FhirClient(base, retries=2, backoff_factor=0).read("Task", "1")
    assert len(script.seen) == 3


def test_a_refused_connection_is_a_transient_error_naming_the_cause():
    with pytest.raises(TransientError, match="connection refused"):
        FhirClient("http://127.0.0.1:9/fhir", retries=1, backoff_factor=0).read("Task", "1")
