"""Bulk Data $export as a client sees it: what the kick-off sends, Retry-After honoured, NDJSON streamed."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import responses
from responses import matchers

from fhircare.errors import FhirServerError
from fhircare.fhir import FhirClient
from fhircare.fhir.bulk import ExportEvent, kick_off, open_export, retry_after

BASE = "https://fhir.example.org/r4"
STATUS = f"{BASE}/bulk-status/job-1"
EXPORT_OPERATION = {"name": "export", "definition": "http://hl7.org/fhir/OperationDefinition/export"}


def _metadata(operations: list[dict[str, str]]) -> dict[str, object]:
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "fhirVersion": "4.0.1",
        "rest": [{"mode": "server", "operation": operations, "resource": []}],
    }


def _ndjson(*resources: dict[str, object]) -> str:
    return "".join(json.dumps(r) + "\n" for r in resources)


@responses.activate
def test_kick_off_asks_for_async_with_type_and_since_and_polling_waits_as_the_server_says():
    responses.get(
        f"{BASE}/$export",
        status=202,
        headers={"Content-Location": STATUS},
        match=[
            matchers.header_matcher({"Prefer": "respond-async"}),
            matchers.query_param_matcher({"_type": "Task,Practitioner", "_since": "2026-06-01T00:00:00Z"}),
        ],
    )
    in_two_seconds = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=2), usegmt=True)
    responses.get(STATUS, status=202, headers={"Retry-After": "3", "X-Progress": "collecting"})
    responses.get(STATUS, status=202, headers={"Retry-After": in_two_seconds})
    manifest = {
        "transactionTime": "2026-06-30T09:00:00Z",
        "request": f"{BASE}/$export",
        "requiresAccessToken": True,
        "output": [{"type": "Task", "url": f"{BASE}/bulk-files/job-1/Task.ndjson", "count": 2}],
        "error": [],
    }
    responses.get(STATUS, status=200, json=manifest)
    responses.get(
        f"{BASE}/bulk-files/job-1/Task.ndjson",
        body=_ndjson({"resourceType": "Task", "id": "a"}, {"resourceType": "Task", "id": "b"}),
        content_type="application/fhir+ndjson",
    )
    responses.delete(STATUS, status=202)
    slept: list[float] = []
    events: list[ExportEvent] = []
    with FhirClient(BASE) as client:
        job = kick_off(
            client, types=["Task", "Practitioner"], since="2026-06-01T00:00:00Z", sleep=slept.append
        )
        files = job.wait(listener=events.append)
        ids = [r["id"] for r in job.resources()]
        job.delete()
    assert slept[0] == 3 and 1 <= slept[1] <= 2
    assert [e.progress for e in events if e.kind == "waiting"] == ["collecting", ""]
    assert [(f.type, f.count) for f in files] == [("Task", 2)]
    assert ids == ["a", "b"]
    assert responses.calls[-1].request.method == "DELETE"


def test_retry_after_reads_seconds_and_dates_and_clamps_what_is_unreasonable():
    now = datetime(2026, 6, 30, 9, 0, tzinfo=timezone.utc)
    assert retry_after("5", now) == 5
    assert retry_after(format_datetime(now + timedelta(seconds=12), usegmt=True), now) == 12
    assert retry_after(format_datetime(now - timedelta(seconds=12), usegmt=True), now) == 0
    assert retry_after("86400", now) == 60
    assert retry_after(None, now) == retry_after("soon", now) == 1


@responses.activate
def test_a_server_without_export_gets_no_kick_off_and_the_caller_pages():
    responses.get(f"{BASE}/metadata", json=_metadata([]))
    with FhirClient(BASE) as client:
        assert open_export(client, types=["Task"]) is None
    assert [c.request.url for c in responses.calls] == [f"{BASE}/metadata"]


@responses.activate
def test_a_kick_off_refused_as_unsupported_falls_back_but_a_server_error_does_not():
    responses.get(f"{BASE}/metadata", json=_metadata([EXPORT_OPERATION]))
    responses.get(f"{BASE}/$export", status=501, json={"resourceType": "OperationOutcome", "issue": []})
    with FhirClient(BASE, retries=0) as client:
        assert open_export(client, types=["Task"]) is None
        responses.replace(
            responses.GET, f"{BASE}/$export", status=500, json={"resourceType": "OperationOutcome"}
        )
        with pytest.raises(FhirServerError):
            open_export(client, types=["Task"])


@responses.activate
def test_an_export_file_outside_the_fhir_base_is_not_followed():
    responses.get(f"{BASE}/$export", status=202, headers={"Content-Location": STATUS})
    manifest = {"output": [{"type": "Task", "url": "https://elsewhere.example.com/Task.ndjson"}], "error": []}
    responses.get(STATUS, status=200, json=manifest)
    with FhirClient(BASE) as client:
        job = kick_off(client, types=["Task"])
        job.wait()
        with pytest.raises(FhirServerError, match="outside the configured FHIR base"):
            list(job.resources())


class _SlowFile(BaseHTTPRequestHandler):
    """Sends one NDJSON line, then waits until the test has read it before sending the rest."""

    first_read = threading.Event()
    waited_in_vain = False  # True when the client wanted the whole file before reading the first line

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.send_response(200)
        self.send_header("Content-Type", "application/fhir+ndjson")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self._chunk(_ndjson({"resourceType": "Task", "id": "first"}))
        _SlowFile.waited_in_vain = not self.first_read.wait(5)
        self._chunk(_ndjson(*({"resourceType": "Task", "id": f"t{i}"} for i in range(1000))))
        self.wfile.write(b"0\r\n\r\n")

    def _chunk(self, text: str) -> None:
        data = text.encode()
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def slow_file_server() -> Iterator[str]:
    _SlowFile.first_read.clear()
    _SlowFile.waited_in_vain = False
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _SlowFile)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/fhir"
    _SlowFile.first_read.set()
    httpd.shutdown()
    httpd.server_close()


def test_an_export_file_is_read_line_by_line_as_it_arrives(slow_file_server):
    with FhirClient(slow_file_server) as client:
        lines = client.stream_lines(f"{slow_file_server}/bulk-files/job/Task.ndjson")
        first = json.loads(next(lines))
        _SlowFile.first_read.set()  # the rest of the file is sent only now
        rest = [json.loads(line)["id"] for line in lines]
    assert first["id"] == "first" and not _SlowFile.waited_in_vain
    assert len(rest) == 1000 and rest[-1] == "t999"
