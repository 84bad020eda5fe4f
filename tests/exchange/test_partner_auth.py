"""A partner that wants credentials: SMART Backend Services (``auth: {mode: backend}``) and a static
bearer (``auth: {mode: bearer, token_env}``), on both partner servers.

The partner's server sits behind a small proxy that forwards only requests carrying an access token the
test SMART server issued and still holds as valid (its tokens are opaque: the proxy asks the server's own
token store, as its resource endpoint does), and answers 401 otherwise. The proxy counts what it saw; the
SMART server counts the client_credentials grants it served.
"""

from __future__ import annotations

import json
import logging
import types
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from fhircare.cli.main import cli
from fhircare.exchange import Exchange, parse_partners, send, sync_once
from fhircare.fhir.auth import BackendServicesAuth
from fhircare.fhir.auth import backend as backend_module
from tests.exchange.conftest import World
from tests.faults.proxy import FaultProxy
from tests.integration.smart_server import Client, SmartAuthServer

CLIENT_ID = "fhircare-exchange"


class AuthProxy(FaultProxy):
    """Forwards a request only when its bearer token is one the SMART server issued and still honours."""

    def __init__(self, upstream_base: str, smart: SmartAuthServer) -> None:
        super().__init__(upstream_base)
        self.smart = smart
        self.tokens: list[str] = []  # the bearer token of every request forwarded
        self.refused: list[tuple[str, str]] = []  # (method, path) answered 401

    def _valid(self, header: str) -> str | None:
        token = header[7:] if header.startswith("Bearer ") else ""
        issued = self.smart.tokens.get(token)
        if issued is None or issued.revoked or issued.is_expired():
            return None
        return token

    def _handle_one(self, request: BaseHTTPRequestHandler) -> None:
        token = self._valid(request.headers.get("Authorization", ""))
        if token is None:
            length = int(request.headers.get("Content-Length") or 0)
            if length:
                request.rfile.read(length)
            self.refused.append((request.command, request.path))
            payload = b'{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"login"}]}'
            request.send_response(401)
            request.send_header("WWW-Authenticate", "Bearer")
            request.send_header("Content-Type", "application/fhir+json")
            request.send_header("Content-Length", str(len(payload)))
            request.end_headers()
            request.wfile.write(payload)
            return
        self.tokens.append(token)
        super()._handle_one(request)


def _key(algorithm: str) -> Any:
    if algorithm == "RS384":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP384R1())


def _private_pem(key: Any) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _public_pem(key: Any) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@dataclass
class Guarded:
    """The world's referral maker, with the partner behind the auth proxy and our partners file."""

    world: World
    smart: SmartAuthServer
    proxy: AuthProxy
    tmp: Path

    def partners_file(self, auth: dict[str, str]) -> Path:
        partner = {
            "organization": self.world.org,
            "base": self.proxy.base_url,
            "pattern": "direct",
            "auth": auth,
            "poll": "2s",
            "notify": "poll",
        }
        document = {
            "self": {
                "base": self.world.exchange.partners.base,
                "organization": self.world.exchange.partners.organization,
            },
            "partners": {self.world.partner: partner},
        }
        path = self.tmp / f"partners-{uuid.uuid4().hex[:6]}.yaml"
        path.write_text(yaml.safe_dump(document), encoding="utf-8")
        return path

    def backend(self, algorithm: str = "RS384", registered: Any = None) -> tuple[Path, str]:
        """A partners file with backend auth (a fresh key pair; ``registered``: the key the SMART
        server knows, default the same pair) and the private key's PEM."""
        key = _key(algorithm)
        self.smart.register(
            Client(
                CLIENT_ID,
                [],
                public_key_pem=_public_pem(registered or key),
                grant_types=("client_credentials",),
                auth_method="client_assertion_jwt",
            )
        )
        pem = _private_pem(key)
        key_file = self.tmp / f"partner-{uuid.uuid4().hex[:6]}.pem"
        key_file.write_text(pem, encoding="utf-8")
        auth = {
            "mode": "backend",
            "client_id": CLIENT_ID,
            "token_url": f"{self.smart.base}/token",
            "key_file": str(key_file),
        }
        return self.partners_file(auth), pem

    def exchange(self, path: Path) -> Exchange:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        return Exchange(self.world.exchange.settings, parse_partners(document, str(path)), self.world.ours)

    def cli(self, args: list[str], path: Path, **env: str) -> Any:
        return CliRunner().invoke(
            cli, ["--base", self.world.ours.base_url, *args], env={"FHIRCARE_PARTNERS": str(path), **env}
        )

    def grants(self) -> int:
        return self.smart.grants_used.count("client_credentials")


@pytest.fixture()
def guarded(world: World, partner_server: Any, tmp_path: Path) -> Iterator[Guarded]:
    smart = SmartAuthServer(partner_server.base_url).start()
    try:
        with AuthProxy(partner_server.base_url, smart) as proxy:
            yield Guarded(world, smart, proxy, tmp_path)
    finally:
        smart.stop()


#: the test SMART server's own loggers (Authlib logs the tokens it issues): not fhircare's logs
SERVER_LOGGERS = ("authlib", "werkzeug")


def _logs(caplog: pytest.LogCaptureFixture) -> str:
    """Every log line fhircare and its HTTP stack wrote (the test authorization server's left out)."""
    return "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith(SERVER_LOGGERS))


def _secret_free(text: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in text
    assert "PRIVATE KEY" not in text and "Bearer " not in text


@pytest.mark.parametrize("algorithm", ["RS384", "ES384"])
def test_send_and_sync_carry_a_token_from_the_partners_server(
    guarded: Guarded, algorithm: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    path, pem = guarded.backend(algorithm)
    task_id, _ = guarded.world.refer()
    out = guarded.cli(["exchange", "send", f"Task/{task_id}"], path)
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["created"] is True
    assert len(guarded.world.remote_tasks(task_id)) == 1
    sent_requests = len(guarded.proxy.log.seen)
    assert sent_requests == 1 and guarded.proxy.refused == []  # one conditional create
    assert guarded.grants() == 1  # one process: one token for every request it made
    assert len(guarded.proxy.tokens) == sent_requests and len(set(guarded.proxy.tokens)) == 1

    remote = guarded.world.remote_of(task_id)
    from fhircare.exchange import work

    work(guarded.world.theirs, remote["id"], "accepted")
    out = guarded.cli(["sync", "--once", "--partner", guarded.world.partner], path)
    assert out.exit_code == 0, out.output
    report = json.loads(out.stdout)["partners"][guarded.world.partner]
    assert report["applied"] == 1 and report["reachable"] is True
    assert guarded.world.ours.read("Task", task_id)["status"] == "accepted"
    assert guarded.proxy.refused == []
    assert len(guarded.proxy.tokens) == len(guarded.proxy.log.seen) > sent_requests
    assert guarded.grants() == 2 and len(set(guarded.proxy.tokens)) == 2  # a second process, a second token
    assert set(guarded.proxy.tokens) <= set(guarded.smart.tokens)
    _secret_free(_logs(caplog) + out.output, pem, *guarded.proxy.tokens)


def test_the_token_is_fetched_once_and_renewed_only_near_expiry(
    guarded: Guarded, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, _ = guarded.backend()
    guarded.smart.token_lifetime = 120
    first, _ = guarded.world.refer("first")
    second, _ = guarded.world.refer("second")
    with guarded.exchange(path) as exchange:
        send(exchange, first)
        send(exchange, second)
        sync_once(exchange, guarded.world.partner)
        before = len(guarded.proxy.tokens)
        assert guarded.grants() == 1 and len(set(guarded.proxy.tokens)) == 1 and before == 3
        # two conditional creates and one poll, one token. 100 s later the token has 20 s left (under the client's 30 s margin): one new token, then reused
        real = backend_module.time.time
        monkeypatch.setattr(backend_module, "time", types.SimpleNamespace(time=lambda: real() + 100))
        third, _ = guarded.world.refer("third")  # (sync sends unsent referrals: these come later)
        fourth, _ = guarded.world.refer("fourth")
        send(exchange, third)
        send(exchange, fourth)
    assert guarded.grants() == 2
    after = guarded.proxy.tokens[before:]
    assert len(after) == 2 and len(set(after)) == 1 and after[0] != guarded.proxy.tokens[0]
    assert guarded.proxy.refused == [] and len(guarded.proxy.tokens) == len(guarded.proxy.log.seen)
    for task_id in (first, second, third, fourth):
        assert len(guarded.world.remote_tasks(task_id)) == 1


def test_a_wrong_key_is_refused_at_send_naming_the_partner_and_nothing_is_written(
    guarded: Guarded, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    path, pem = guarded.backend(registered=_key("RS384"))  # the server knows another public key
    task_id, _ = guarded.world.refer()
    out = guarded.cli(["exchange", "send", f"Task/{task_id}"], path)
    assert out.exit_code == 5, out.output
    assert guarded.world.partner in out.output
    assert "token endpoint refused" in out.output
    assert guarded.smart.tokens == {}  # no token issued
    assert guarded.proxy.log.seen == [] and guarded.proxy.refused == []  # the partner saw nothing
    assert guarded.world.remote_tasks(task_id) == []
    task = guarded.world.ours.read("Task", task_id)
    assert not any("exchange-link" in e["url"] for e in task.get("extension", []))
    synced = guarded.cli(["sync", "--once", "--partner", guarded.world.partner], path)
    assert synced.exit_code == 5 and guarded.world.partner in synced.output
    assert guarded.proxy.log.seen == [] and guarded.smart.tokens == {}
    _secret_free(_logs(caplog) + out.output + synced.output, pem)


def test_bearer_mode_sends_the_token_from_its_variable_and_never_logs_it(
    guarded: Guarded, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    _, pem = guarded.backend()  # the partner issued us a token out of band: here, by its own endpoint
    token = BackendServicesAuth(f"{guarded.smart.base}/token", CLIENT_ID, pem).token()
    path = guarded.partners_file({"mode": "bearer", "token_env": "FOOD_BANK_TOKEN"})
    task_id, _ = guarded.world.refer()
    out = guarded.cli(["exchange", "send", f"Task/{task_id}"], path, FOOD_BANK_TOKEN=token)
    assert out.exit_code == 0, out.output
    out_sync = guarded.cli(
        ["sync", "--once", "--partner", guarded.world.partner], path, FOOD_BANK_TOKEN=token
    )
    assert out_sync.exit_code == 0, out_sync.output
    assert len(guarded.world.remote_tasks(task_id)) == 1
    assert guarded.proxy.refused == [] and len(guarded.proxy.tokens) == 2  # the create, one poll
    assert set(guarded.proxy.tokens) == {token} and len(guarded.proxy.tokens) == len(guarded.proxy.log.seen)
    _secret_free(_logs(caplog) + out.output + out_sync.output, token, pem)
    unsent, _ = guarded.world.refer("unsent")
    missing = guarded.cli(["exchange", "send", f"Task/{unsent}"], path)
    assert missing.exit_code != 0 and "FOOD_BANK_TOKEN" in missing.output
