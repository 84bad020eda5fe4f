"""Serve the sidecar over real HTTP on loopback for tests."""

from __future__ import annotations

import threading
from typing import Any

from werkzeug.serving import make_server

from fhircare.server.launcher import free_port
from fhircare.settings import Settings
from fhircare.web import create_app

SECRET = "test-secret-" + "x" * 40


class Sidecar:
    def __init__(self, settings: Settings, port: int | None = None) -> None:
        self.port = port or free_port()
        self.app = create_app(settings)
        self.server = make_server("127.0.0.1", self.port, self.app, threaded=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Sidecar:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()


def smart_settings(iss: str, port: int, **extra: Any) -> Settings:
    return Settings(
        base_url=iss,
        auth_mode="smart",
        secret_key=SECRET,
        smart_client_id="fhircare-test",
        smart_redirect_uri=f"http://127.0.0.1:{port}/callback",
        smart_issuers=(iss,),
        smart_scopes="launch openid fhirUser offline_access user/*.cruds",
        **extra,
    )
