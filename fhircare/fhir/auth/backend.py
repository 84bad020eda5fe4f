"""SMART Backend Services: client_credentials with a private_key_jwt assertion (RS384 / ES384, PyJWT)."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import jwt
import requests
from requests.auth import AuthBase

from ...errors import Unauthorized

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


class BackendServicesAuth(AuthBase):
    """Gets (and caches until shortly before expiry) a system access token, and sends it as a bearer."""

    def __init__(
        self,
        token_url: str,
        client_id: str,
        private_key_pem: str,
        scope: str = "system/*.rs system/*.cu",
        algorithm: str = "RS384",
        key_id: str | None = None,
        timeout: tuple[float, float] = (3.05, 30.0),
    ) -> None:
        if algorithm not in ("RS384", "ES384"):
            raise ValueError("SMART Backend Services allows RS384 or ES384")
        self.token_url = token_url
        self.client_id = client_id
        self.private_key_pem = private_key_pem
        self.scope = scope
        self.algorithm = algorithm
        self.key_id = key_id
        self.timeout = timeout
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = threading.Lock()

    @classmethod
    def from_key_file(
        cls, token_url: str, client_id: str, key_file: str | Path, **kwargs: object
    ) -> BackendServicesAuth:
        return cls(token_url, client_id, Path(key_file).read_text(encoding="utf-8"), **kwargs)  # type: ignore[arg-type]

    def assertion(self) -> str:
        now = int(time.time())
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": self.token_url,
            "exp": now + 300,
            "jti": str(uuid.uuid4()),
        }
        headers = {"kid": self.key_id} if self.key_id else None
        return jwt.encode(claims, self.private_key_pem, algorithm=self.algorithm, headers=headers)

    def token(self) -> str:
        with self._lock:
            if self._token is None or time.time() + 30 >= self._expires_at:
                self._fetch()
            assert self._token is not None
            return self._token

    def _fetch(self) -> None:
        form = {
            "grant_type": "client_credentials",
            "scope": self.scope,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": self.assertion(),
        }
        try:
            answer = requests.post(
                self.token_url, data=form, timeout=self.timeout, headers={"Accept": "application/json"}
            )
        except requests.RequestException as exc:
            raise Unauthorized(
                f"the token endpoint could not be reached ({type(exc).__name__})", http_status=401
            ) from None
        body = answer.json() if answer.headers.get("Content-Type", "").startswith("application/json") else {}
        if answer.status_code != 200 or not body.get("access_token"):
            raise Unauthorized(
                f"the token endpoint refused the client ({answer.status_code} {body.get('error', '')})".strip(),
                http_status=401,
            )
        self._token = str(body["access_token"])
        self._expires_at = time.time() + float(body.get("expires_in") or 300)

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.token()}"
        return request

    def __repr__(self) -> str:
        return f"BackendServicesAuth(client_id={self.client_id!r}, <token redacted>)"
