"""``fhircare server start``: a taken port is a clear error, and "ready" means /metadata answers."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner

from fhircare.cli.main import cli
from fhircare.errors import ConfigurationError
from fhircare.server import EmbeddedServer

FHIRCARE = str(Path(sys.executable).with_name("fhircare"))


class _AnswersEverything(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        body = json.dumps({"resourceType": "CapabilityStatement", "status": "active"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/fhir+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def other_server() -> Iterator[int]:
    """Another HTTP server already answering /metadata on a port: the case that used to look 'ready'."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _AnswersEverything)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield int(httpd.server_address[1])
    httpd.shutdown()
    httpd.server_close()


def test_server_start_on_a_taken_port_exits_non_zero_with_the_reason_and_never_says_ready(other_server):
    result = CliRunner().invoke(cli, ["server", "start", "--port", str(other_server)])
    assert result.exit_code == 3
    assert f"cannot listen on 127.0.0.1:{other_server}: already in use" in result.output
    assert "server ready" not in result.output


def test_the_library_refuses_a_taken_port_too(other_server):
    with pytest.raises(ConfigurationError, match="already in use"):
        EmbeddedServer(port=other_server).start()


def test_server_start_says_ready_once_metadata_answers_and_stops_on_interrupt():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [FHIRCARE, "server", "start", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert first.startswith(f"FHIR R4 server ready at http://127.0.0.1:{port}/fhir")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/fhir/metadata", timeout=5) as answer:  # noqa: S310
            assert json.load(answer)["resourceType"] == "CapabilityStatement"
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
