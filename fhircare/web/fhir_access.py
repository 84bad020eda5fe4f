"""Which FhirClient serves a request: a shared one (dev), the caller's forwarded token (passthrough),
or the SMART session's token. Flask extension with ``init_app``."""

from __future__ import annotations

import threading
from typing import Any

from flask import Flask, current_app, g, request

from ..errors import ScopeDenied, Unauthorized
from ..fhir import FhirClient
from ..fhir.auth import BearerAuth
from ..settings import Settings


class FhirAccess:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._local = threading.local()

    def init_app(self, app: Flask) -> None:
        app.extensions["fhircare.access"] = self

    def _new_client(self, token: str | None) -> FhirClient:
        s = self.settings
        return FhirClient(
            s.base_url,
            auth=BearerAuth(token) if token else None,
            timeout=(s.timeout_connect, s.timeout_read),
            retries=s.retries,
            backoff_factor=s.backoff_factor,
        )

    def shared_client(self) -> FhirClient:
        client = getattr(self._local, "client", None)
        if client is None:
            s = self.settings
            client = self._new_client(s.bearer_token)
            if s.auth_mode == "backend":
                from ..fhir.auth import BackendServicesAuth

                if not (s.backend_token_url and s.backend_client_id and s.backend_key_file):
                    raise Unauthorized(
                        "backend mode needs FHIRCARE_BACKEND_TOKEN_URL, _CLIENT_ID and _KEY_FILE",
                        http_status=401,
                    )
                client.session.auth = BackendServicesAuth.from_key_file(
                    s.backend_token_url, s.backend_client_id, s.backend_key_file
                )
            self._local.client = client
        return client

    def client_for_request(self) -> FhirClient:
        mode = self.settings.auth_mode
        if mode in ("none", "backend"):
            return self.shared_client()
        if mode == "passthrough":
            header = request.headers.get("Authorization", "")
            if not header.lower().startswith("bearer ") or len(header) < 10:
                raise Unauthorized("a bearer token is required", http_status=401)
            client = self._new_client(header.split(" ", 1)[1].strip())
            g.setdefault("fhircare_clients", []).append(client)
            return client
        launch = g.get("smart_session")
        if launch is None:
            raise Unauthorized("sign in through the SMART launch first", http_status=401)
        client = FhirClient(
            launch.iss,
            auth=BearerAuth(launch.access_token),
            timeout=(self.settings.timeout_connect, self.settings.timeout_read),
            retries=self.settings.retries,
        )
        g.setdefault("fhircare_clients", []).append(client)
        return client


def access() -> FhirAccess:
    found: Any = current_app.extensions["fhircare.access"]
    return found  # type: ignore[no-any-return]


def granted_scopes() -> set[str] | None:
    """Scopes of the current caller, or None where fhircare does not control them (dev, backend)."""
    launch = g.get("smart_session")
    if launch is not None:
        return set(launch.scopes)
    return None


def require_scopes(resource_types: set[str], interaction: str) -> None:
    """403 unless the granted scopes cover ``interaction`` (c, r, u, d, s) on every resource type."""
    scopes = granted_scopes()
    if scopes is None:
        return
    missing = sorted(t for t in resource_types if not scope_allows(scopes, t, interaction))
    if missing:
        raise ScopeDenied(f"the granted scopes do not allow '{interaction}' on {', '.join(missing)}")


def require_write_scopes(created: set[str], updated: set[str]) -> None:
    """Before a workflow writes: 'c' on every type it may create, 'u' on every type it may update."""
    require_scopes(created, "c")
    require_scopes(updated, "u")


V1_MEANING = {"read": set("rs"), "write": set("cud"), "*": set("cruds")}


def scope_allows(scopes: set[str], resource_type: str, interaction: str) -> bool:
    """SMART v1 (``user/Task.write``) and v2 (``user/Task.cu``, ``patient/*.rs``) scopes."""
    for scope in scopes:
        context, _, rest = scope.partition("/")
        if context not in ("user", "patient", "system") or not rest:
            continue
        rtype, _, perms = rest.partition(".")
        if rtype not in ("*", resource_type):
            continue
        perms = perms.split("?", 1)[0]
        allowed = V1_MEANING.get(perms, set(perms))
        if interaction in allowed:
            return True
    return False
