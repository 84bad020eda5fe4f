"""Two sidecar processes share sessions through a real Redis (redis-server from Debian)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
import requests

from fhircare.server.launcher import free_port
from tests.integration.sidecar_harness import SECRET
from tests.integration.smart_server import Client, SmartAuthServer
from tests.support.cases import CASES

REDIS = shutil.which("redis-server")
pytestmark = pytest.mark.skipif(
    REDIS is None, reason="redis-server is not installed (scripts/system-deps.sh installs it as root)"
)

SIDECAR = """
import sys
from werkzeug.serving import make_server
from fhircare.settings import Settings
from fhircare.web import create_app
iss, port, redirect_port, redis_url, secret = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
settings = Settings(base_url=iss, auth_mode="smart", secret_key=secret, smart_client_id="fhircare-test",
                    smart_redirect_uri=f"http://127.0.0.1:{redirect_port}/callback", smart_issuers=(iss,), redis_url=redis_url)
make_server("127.0.0.1", port, create_app(settings), threaded=True).serve_forever()
"""


@pytest.fixture()
def redis_url() -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [REDIS, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            import redis

            redis.Redis(port=port).ping()
            break
        except Exception:
            time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0"
    process.terminate()
    process.wait(10)


def _wait(url: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            requests.get(f"{url}/healthz", timeout=1)
            return
        except requests.ConnectionError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not start")


def test_a_session_made_on_one_replica_works_on_the_other(fhir_server, client, redis_url, uid):
    auth = SmartAuthServer(fhir_server.base_url).start()
    ports = [free_port(), free_port()]
    auth.register(Client("fhircare-test", [f"http://127.0.0.1:{ports[0]}/callback"]))
    replicas = [
        subprocess.Popen(
            [sys.executable, "-c", SIDECAR, auth.iss, str(port), str(ports[0]), redis_url, SECRET]
        )
        for port in ports
    ]
    try:
        urls = [f"http://127.0.0.1:{port}" for port in ports]
        for url in urls:
            _wait(url)
        browser = requests.Session()
        browser.get(f"{urls[0]}/launch", params={"iss": auth.iss, "launch": "x"}, timeout=30)
        cookie = browser.cookies.get("fhircare_session")
        assert cookie
        case = CASES["refer"](client, uid)
        other = requests.post(
            f"{urls[1]}/api/v1/workflows/refer",
            json=case.payload,
            cookies={"fhircare_session": cookie},
            timeout=30,
        )
        assert other.status_code == 201, other.text
        assert (
            requests.post(
                f"{urls[1]}/api/v1/workflows/refer",
                json=case.payload,
                cookies={"fhircare_session": "forged"},
                timeout=30,
            ).status_code
            == 401
        )
        import redis

        keys = [k.decode() for k in redis.Redis.from_url(redis_url).keys("fhircare:session:*")]
        assert keys == [f"fhircare:session:{cookie}"]
    finally:
        for process in replicas:
            process.terminate()
            process.wait(10)
        auth.stop()
