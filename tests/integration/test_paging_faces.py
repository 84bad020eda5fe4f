"""Adaptive paging and the ``truncated`` flag in the two faces: ``fhircare worklist`` (click's CliRunner)
and ``GET /api/v1/worklist``, on both servers.

Without a page size the faces page as the library's views do (pages as large as the server allows);
``--page-size``, ``FHIRCARE_PAGE_SIZE`` and ``?page_size=`` still win. Behind a proxy that drops next
links and ignores ``_offset`` (a server that cuts searches short), the CLI's JSON says
``"truncated": true`` and the API sets ``Fhircare-Truncated`` (and ``truncated`` with ``envelope=true``).
"""

from __future__ import annotations

import http.client
import json
import math
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
import requests
from click.testing import CliRunner

from fhircare.cli.main import cli
from fhircare.fhir import FhirClient
from fhircare.settings import Settings
from tests.integration.sidecar_harness import Sidecar
from tests.support.clock import at

TASKS = 1200


def _task(owner: str, patient: str, n: int) -> dict[str, Any]:
    return {
        "resourceType": "Task",
        "status": "requested",
        "intent": "order",
        "priority": "routine",
        "description": f"task {n}",
        "for": {"reference": patient},
        "owner": {"reference": owner},
        "authoredOn": at(-180, "09:00"),
        "restriction": {"period": {"end": at(-150, "23:59:59")}},
    }


@pytest.fixture(scope="module")
def owners(fhir_server: Any) -> Iterator[dict[str, Any]]:
    """An owner of 1,200 open Tasks and an owner of 3, on this server (made once per server)."""
    with FhirClient(fhir_server.base_url) as client:
        patient = client.create({"resourceType": "Patient", "name": [{"family": "Paging", "given": ["Ada"]}]})
        busy = client.create({"resourceType": "Practitioner", "name": [{"family": "Busy"}]})
        quiet = client.create({"resourceType": "Practitioner", "name": [{"family": "Quiet"}]})
        p, b, q = f"Patient/{patient['id']}", f"Practitioner/{busy['id']}", f"Practitioner/{quiet['id']}"
        tasks = [_task(b, p, n) for n in range(TASKS)] + [_task(q, p, n) for n in range(3)]
        for start in range(0, len(tasks), 250):
            client.transaction(
                {
                    "entry": [
                        {"resource": t, "request": {"method": "POST", "url": "Task"}}
                        for t in tasks[start : start + 250]
                    ]
                }
            )
        included = client.include_works("Task", "Task:focus")
        # requests per page: the Task search, plus one batch naming the patients where _include is ignored
        yield {"busy": b, "quiet": q, "per_page": 1 if included else 2}


def _expected(owners: dict[str, Any], page_size: int) -> int:
    return math.ceil(TASKS / page_size) * owners["per_page"]


# --- the CLI ------------------------------------------------------------------------------------------


def _cli_worklist(base: str, owner: str, *extra: str, env: dict[str, str | None] | None = None) -> Any:
    answer = CliRunner().invoke(
        cli,
        ["--base", base, "worklist", "--owner", owner, "--format", "json", *extra],
        env={"FHIRCARE_PAGE_SIZE": None, **(env or {})},
    )
    assert answer.exit_code == 0, answer.output
    return json.loads(answer.stdout)


def _cli_overhead(fhir_server: Any, server_requests: Any, owners: dict[str, Any]) -> int:
    """What one CLI run sends besides the worklist's pages: a fresh client's questions to the server
    (measured on the owner of 3 tasks, whose worklist is one page)."""
    before = server_requests()
    assert len(_cli_worklist(fhir_server.base_url, owners["quiet"])) == 3
    return server_requests() - before - owners["per_page"]


def test_cli_worklist_pages_adaptively_and_an_explicit_page_size_still_applies(
    fhir_server, server_requests, owners
):
    overhead = _cli_overhead(fhir_server, server_requests, owners)

    before = server_requests()
    rows = _cli_worklist(fhir_server.base_url, owners["busy"])
    adaptive = server_requests() - before
    assert isinstance(rows, list) and len({r["task"] for r in rows}) == TASKS
    # pages of 1,000 (the embedded server's cap, Medplum's too): 2 pages for 1,200 tasks, not 12
    assert adaptive - overhead == _expected(owners, 1000)

    before = server_requests()
    assert len(_cli_worklist(fhir_server.base_url, owners["busy"], "--page-size", "100")) == TASKS
    assert server_requests() - before - overhead == _expected(owners, 100)

    before = server_requests()
    assert (
        len(_cli_worklist(fhir_server.base_url, owners["busy"], env={"FHIRCARE_PAGE_SIZE": "300"})) == TASKS
    )
    assert server_requests() - before - overhead == _expected(owners, 300)

    # the flag wins over the environment
    before = server_requests()
    rows = _cli_worklist(
        fhir_server.base_url, owners["busy"], "--page-size", "600", env={"FHIRCARE_PAGE_SIZE": "100"}
    )
    assert len(rows) == TASKS and server_requests() - before - overhead == _expected(owners, 600)


# --- the API ------------------------------------------------------------------------------------------


def _api_requests(sidecar: Sidecar, server_requests: Any, params: dict[str, str]) -> tuple[int, Any]:
    before = server_requests()
    answer = requests.get(f"{sidecar.url}/api/v1/worklist", params=params, timeout=120)
    assert answer.status_code == 200, answer.text
    assert answer.headers["Fhircare-Truncated"] == "false"
    return server_requests() - before, answer.json()


def test_api_worklist_pages_adaptively_and_an_explicit_page_size_still_applies(
    fhir_server, server_requests, owners
):
    with Sidecar(Settings(base_url=fhir_server.base_url)) as sidecar:
        # what each API request sends besides the worklist's pages (its client's questions to the
        # server), measured on the owner of 3 tasks, whose worklist is one page
        sent, rows = _api_requests(sidecar, server_requests, {"owner": owners["quiet"]})
        assert len(rows) == 3
        overhead = sent - owners["per_page"]
        sent, rows = _api_requests(sidecar, server_requests, {"owner": owners["busy"]})
        assert len({r["task"] for r in rows}) == TASKS
        assert sent - overhead == _expected(owners, 1000)  # 2 pages for 1,200 tasks, not 12
        sent, rows = _api_requests(sidecar, server_requests, {"owner": owners["busy"], "page_size": "100"})
        assert len(rows) == TASKS and sent - overhead == _expected(owners, 100)

    # FHIRCARE_PAGE_SIZE (Settings.page_size) is the deployment's default; ?page_size= wins over it
    with Sidecar(Settings(base_url=fhir_server.base_url, page_size=300)) as sidecar:
        sent, rows = _api_requests(sidecar, server_requests, {"owner": owners["busy"]})
        assert len(rows) == TASKS and sent - overhead == _expected(owners, 300)
        sent, rows = _api_requests(sidecar, server_requests, {"owner": owners["busy"], "page_size": "600"})
        assert len(rows) == TASKS and sent - overhead == _expected(owners, 600)


# --- a server that cuts searches short ---------------------------------------------------------------


class CuttingProxy:
    """Forwards to the FHIR server, but drops every searchset's next link and ignores ``_offset`` (it
    answers the first page again): a server that reports more than it returns and offers no way on."""

    def __init__(self, upstream_base: str) -> None:
        parts = urlsplit(upstream_base)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                return

            def _handle(self) -> None:
                proxy.forward(self)

            do_GET = do_POST = do_PUT = do_DELETE = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.path = parts.path.rstrip("/")
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{self.path}"

    def forward(self, request: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(request.path)
        query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "_offset"]
        target = parts.path + ("?" + urlencode(query) if query else "")
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "connection")}
        upstream = http.client.HTTPConnection(self.host, self.port, timeout=120)
        try:
            upstream.request(request.command, target, body=body, headers=headers)
            answer = upstream.getresponse()
            content = answer.read()
            status, kept = (
                answer.status,
                [
                    (k, v)
                    for k, v in answer.getheaders()
                    if k.lower()
                    not in ("content-length", "transfer-encoding", "connection", "content-encoding")
                ],
            )
        finally:
            upstream.close()
        if request.command == "GET":
            content = _without_next_links(content)
        request.send_response(status)
        for key, value in kept:
            request.send_header(key, value)
        request.send_header("Content-Length", str(len(content)))
        request.end_headers()
        request.wfile.write(content)

    def __enter__(self) -> CuttingProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def _without_next_links(content: bytes) -> bytes:
    try:
        bundle = json.loads(content)
    except ValueError:
        return content
    if not isinstance(bundle, dict) or bundle.get("type") != "searchset":
        return content
    bundle["link"] = [link for link in bundle.get("link") or [] if link.get("relation") != "next"]
    return json.dumps(bundle).encode()


@pytest.fixture()
def cutting(fhir_server: Any) -> Iterator[CuttingProxy]:
    with CuttingProxy(fhir_server.base_url) as proxy:
        yield proxy


def test_cli_json_says_truncated_when_the_server_cuts_the_worklist_short(cutting, owners):
    cut = _cli_worklist(cutting.base_url, owners["busy"])
    assert cut["truncated"] is True
    assert 0 < len(cut["rows"]) < TASKS  # the first page only: the server offered no way on
    # a worklist that came whole is the array, as before
    whole = _cli_worklist(cutting.base_url, owners["quiet"])
    assert isinstance(whole, list) and len(whole) == 3


def test_api_says_truncated_when_the_server_cuts_the_worklist_short(cutting, owners):
    with Sidecar(Settings(base_url=cutting.base_url)) as sidecar:
        url = f"{sidecar.url}/api/v1/worklist"
        cut = requests.get(url, params={"owner": owners["busy"]}, timeout=120)
        assert cut.status_code == 200 and cut.headers["Fhircare-Truncated"] == "true"
        assert isinstance(cut.json(), list) and 0 < len(cut.json()) < TASKS

        wrapped = requests.get(url, params={"owner": owners["busy"], "envelope": "true"}, timeout=120).json()
        assert wrapped["truncated"] is True and 0 < len(wrapped["rows"]) < TASKS

        whole = requests.get(url, params={"owner": owners["quiet"], "envelope": "true"}, timeout=120)
        assert whole.headers["Fhircare-Truncated"] == "false"
        assert whole.json()["truncated"] is False and len(whole.json()["rows"]) == 3

        assert requests.get(url, params={"envelope": "maybe"}, timeout=30).status_code == 422


def test_the_worklist_page_says_when_the_server_cut_the_list_short(cutting, owners):
    notice = "this list may be incomplete"
    with Sidecar(Settings(base_url=cutting.base_url)) as sidecar:
        cut = requests.get(f"{sidecar.url}/", params={"owner": owners["busy"]}, timeout=120)
        assert cut.status_code == 200 and notice in cut.text
        whole = requests.get(f"{sidecar.url}/", params={"owner": owners["quiet"]}, timeout=120)
        assert whole.status_code == 200 and notice not in whole.text
