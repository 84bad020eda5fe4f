"""Issue 12, items 2, 8-13, 16: attacks on how the sidecar is reached (callers, hosts, cookies, headers,
redirects, logs, hostile input, what Redis holds), each against a real sidecar over HTTP."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
import requests

from fhircare.errors import ConfigurationError
from fhircare.server.launcher import free_port
from fhircare.settings import Settings
from fhircare.web import create_app
from tests.integration.sidecar_harness import SECRET, Sidecar, smart_settings
from tests.integration.smart_server import Client
from tests.security.conftest import login
from tests.support.backend import backend_settings, caller_token, ec_key
from tests.support.cases import CASES

# ---- item 2: Backend Services mode authenticates its callers -----------------------------------


@contextlib.contextmanager
def _serving(port: int, env: dict[str, str], sink: Any, *flags: str) -> Iterator[subprocess.Popen[bytes]]:
    """``fhircare serve`` on ``port`` (output to ``sink``), answering /healthz; stopped afterwards."""
    command = [sys.executable, "-m", "fhircare.cli.main", *flags, "serve", "--port", str(port)]
    process = subprocess.Popen(command, env=env, stdout=sink, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        yield process
    finally:
        process.terminate()
        process.wait(10)


def test_backend_mode_without_caller_authentication_refuses_a_public_bind(tmp_path):
    with pytest.raises(ConfigurationError, match="caller authentication"):
        create_app(Settings(auth_mode="backend", secret_key=SECRET), host="0.0.0.0")


def test_backend_mode_serves_only_callers_with_a_valid_token(auth, client, fhir_server, tmp_path, uid):
    settings, caller_private = backend_settings(auth, tmp_path)
    case = CASES["refer"](client, uid)
    url = None
    with Sidecar(settings) as sidecar:
        url = f"{sidecar.url}/api/v1/workflows/refer"
        counts = fhir_server.resource_counts()
        anyone = requests.post(url, json=case.payload, timeout=30)
        forged = requests.post(
            url,
            json=case.payload,
            headers={"Authorization": f"Bearer {caller_token(ec_key()[0], 'system/*.cruds')}"},
            timeout=30,
        )
        wrong_audience = requests.post(
            url,
            json=case.payload,
            headers={
                "Authorization": f"Bearer {caller_token(caller_private, 'system/*.cruds', audience='someone-else')}"
            },
            timeout=30,
        )
        too_narrow = requests.post(
            url,
            json=case.payload,
            headers={"Authorization": f"Bearer {caller_token(caller_private, 'system/Task.rs')}"},
            timeout=30,
        )
        assert [r.status_code for r in (anyone, forged, wrong_audience, too_narrow)] == [401, 401, 401, 403]
        assert fhir_server.resource_counts() == counts
        allowed = requests.post(
            url,
            json=case.payload,
            headers={"Authorization": f"Bearer {caller_token(caller_private, 'system/*.cruds')}"},
            timeout=30,
        )
        assert allowed.status_code == 201, allowed.text
    assert "client_credentials" in auth.grants_used


# ---- item 8: Secure cookies behind a TLS proxy -------------------------------------------------


def test_cookies_are_secure_behind_a_trusted_tls_proxy(auth):
    port = free_port()
    auth.register(Client("fhircare-test", [f"http://127.0.0.1:{port}/callback"]))
    proxied = replace(smart_settings(auth.iss, port), trusted_proxies=1)
    with Sidecar(proxied, port) as sidecar:
        answer = requests.get(
            f"{sidecar.url}/launch",
            params={"iss": auth.iss},
            headers={"X-Forwarded-Proto": "https"},
            allow_redirects=False,
            timeout=30,
        )
        assert "Secure" in answer.headers["Set-Cookie"]
    with Sidecar(smart_settings(auth.iss, port), port) as untrusting:  # the header alone proves nothing
        answer = requests.get(
            f"{untrusting.url}/launch",
            params={"iss": auth.iss},
            headers={"X-Forwarded-Proto": "https"},
            allow_redirects=False,
            timeout=30,
        )
        assert "Secure" not in answer.headers["Set-Cookie"]
    https = replace(smart_settings(auth.iss, port), smart_redirect_uri="https://sidecar.example.org/callback")
    with Sidecar(https) as sidecar:
        answer = requests.get(
            f"{sidecar.url}/launch", params={"iss": auth.iss}, allow_redirects=False, timeout=30
        )
        assert "Secure" in answer.headers["Set-Cookie"]


# ---- item 9: open redirect --------------------------------------------------------------------


@pytest.mark.parametrize(
    "back", ["//evil.example/x", "https://evil.example/", "/\\evil.example", "javascript:alert(1)"]
)
def test_the_task_forms_back_field_cannot_send_the_browser_elsewhere(dev, client, uid, back):
    task = CASES["task"](client, uid).payload["task"]
    browser = requests.Session()
    csrf = re.search(r'name="csrf" value="([^"]+)"', browser.get(f"{dev.url}/", timeout=30).text)
    token = csrf.group(1) if csrf else ""
    answer = browser.post(
        f"{dev.url}/tasks/{task.split('/')[1]}/action",
        data={"action": "accept", "csrf": token, "back": back},
        allow_redirects=False,
        timeout=30,
    )
    assert answer.status_code == 303
    assert answer.headers["Location"] == "/", answer.headers["Location"]


# ---- item 10: security headers ----------------------------------------------------------------


def test_every_answer_carries_the_security_headers(dev):
    for path, no_store in [
        ("/", True),
        ("/api/v1/worklist", True),
        ("/nowhere", True),
        ("/static/app.css", False),
    ]:
        answer = requests.get(f"{dev.url}{path}", timeout=30)
        headers = answer.headers
        assert "default-src 'self'" in headers["Content-Security-Policy"], path
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "no-referrer"
        assert (headers.get("Cache-Control") == "no-store") is no_store, path


# ---- item 11: no codes or state in logs -------------------------------------------------------


def test_the_dev_servers_log_holds_no_authorization_code_or_state(auth, tmp_path):
    port = free_port()
    auth.register(Client("fhircare-test", [f"http://127.0.0.1:{port}/callback"]))
    env = {
        **os.environ,
        "FHIRCARE_AUTH_MODE": "smart",
        "FHIRCARE_SECRET_KEY": SECRET,
        "FHIRCARE_SMART_CLIENT_ID": "fhircare-test",
        "FHIRCARE_SMART_REDIRECT_URI": f"http://127.0.0.1:{port}/callback",
        "FHIRCARE_SMART_ISSUERS": auth.iss,
        "FHIRCARE_BASE_URL": auth.iss,
    }
    log = tmp_path / "serve.log"
    with log.open("w") as sink, _serving(port, env, sink, "-vv"):
        browser = requests.Session()
        first = browser.get(
            f"http://127.0.0.1:{port}/launch", params={"iss": auth.iss}, allow_redirects=False, timeout=30
        )
        authorize = browser.get(first.headers["Location"], allow_redirects=False, timeout=30)
        callback = authorize.headers["Location"]
        assert browser.get(callback, allow_redirects=False, timeout=30).status_code == 302
        code, state = (re.search(rf"{name}=([^&]+)", callback).group(1) for name in ("code", "state"))
    text = log.read_text()
    assert "GET /callback" in text  # the request is logged...
    assert code not in text and state not in text and "code=" not in text  # ...without its secrets


def test_the_dev_server_drops_a_connection_whose_body_never_comes():
    """``fhircare serve``: a client that announces a body and sends nothing is cut off after the socket
    timeout (serve_commands.SOCKET_TIMEOUT), not held for ever; others are served meanwhile."""
    from fhircare.cli.serve_commands import SOCKET_TIMEOUT

    port = free_port()
    # no FHIR server is needed: the request never gets as far as a workflow
    env = {**os.environ, "FHIRCARE_BASE_URL": "http://127.0.0.1:9/fhir", "FHIRCARE_AUTH_MODE": "none"}
    with _serving(port, env, subprocess.DEVNULL):
        stuck = socket.create_connection(("127.0.0.1", port), timeout=SOCKET_TIMEOUT * 4)
        head = f"POST /api/v1/workflows/refer HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        stuck.sendall(f"{head}Content-Type: application/json\r\nContent-Length: 100\r\n\r\n".encode())
        assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 200
        closed = False
        try:
            while stuck.recv(4096):  # the server gives up on the body and closes (maybe after a 4xx)
                pass
            closed = True
        except TimeoutError:
            pass
        finally:
            stuck.close()
        assert closed, "the development server held a connection whose body never came"


# ---- item 12: hostile numbers and paging ------------------------------------------------------


def test_huge_numbers_and_bad_page_sizes_answer_422_not_500(dev, client, uid):
    url = f"{dev.url}/api/v1/workflows/refer"
    for body in ('{"priority": ' + "9" * 5000 + "}", '{"minutes": 1e999}'):
        answer = requests.post(url, data=body, headers={"Content-Type": "application/json"}, timeout=30)
        assert answer.status_code == 422, answer.text
        assert answer.json()["resourceType"] == "OperationOutcome"
    for size in ("abc", "1e3", "-1", "0", "99999999999999999999"):
        for path in ("/api/v1/worklist", "/api/v1/authorizations"):
            answer = requests.get(f"{dev.url}{path}", params={"page_size": size}, timeout=30)
            assert answer.status_code == 422, (path, size, answer.text)
            assert answer.json()["resourceType"] == "OperationOutcome"


# ---- item 13: DNS rebinding of the dev API ----------------------------------------------------


def test_dev_mode_answers_only_loopback_host_names(dev):
    for host in ("evil.example", "evil.example:80", "10.0.0.5"):
        assert (
            requests.get(f"{dev.url}/api/v1/worklist", headers={"Host": host}, timeout=30).status_code == 400
        )
    port = dev.url.rsplit(":", 1)[1]
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}"):
        assert (
            requests.get(f"{dev.url}/api/v1/caseload", headers={"Host": host}, timeout=30).status_code == 200
        )


# ---- item 16: Redis holds no usable token -----------------------------------------------------

REDIS = shutil.which("redis-server")


@pytest.mark.skipif(
    REDIS is None, reason="redis-server is not installed (scripts/system-deps.sh installs it)"
)
def test_a_copy_of_redis_holds_no_token(auth):
    import redis

    port = free_port()
    process = subprocess.Popen(
        [REDIS, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:
        store = redis.Redis(port=port)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                store.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        sidecar_port = free_port()
        auth.register(Client("fhircare-test", [f"http://127.0.0.1:{sidecar_port}/callback"]))
        settings = replace(smart_settings(auth.iss, sidecar_port), redis_url=f"redis://127.0.0.1:{port}/0")
        with Sidecar(settings, sidecar_port) as sidecar:
            browser = login(sidecar, auth)
            assert browser.get(f"{sidecar.url}/api/v1/caseload", timeout=30).status_code == 200
        issued = next(iter(auth.tokens.values()))
        dump = b"".join(store.get(key) or b"" for key in store.keys("fhircare:*"))
        assert dump and issued.access_token.encode() not in dump and issued.refresh_token.encode() not in dump
        assert b"access_token" not in dump
    finally:
        process.terminate()
        process.wait(10)
