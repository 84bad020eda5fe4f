"""Who the caller is, what they were granted, and which FhirClient serves their request: a shared one
(dev, backend), the caller's forwarded token (passthrough), or the SMART session's token. Flask
extension with ``init_app``."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from flask import Flask, current_app, g, request

from ..errors import ScopeDenied, Unauthorized
from ..fhir import FhirClient
from ..fhir.auth import BearerAuth
from ..settings import Settings
from .callers import CallerVerifier
from .compartment import compartment_filter
from .scopes import Grant


class FhirAccess:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._local = threading.local()
        self.callers = (
            CallerVerifier(settings) if settings.auth_mode == "backend" and settings.caller_key_file else None
        )

    def init_app(self, app: Flask) -> None:
        app.extensions["fhircare.access"] = self

    def _new_client(self, base_url: str, token: str | None, scoped: bool = False) -> FhirClient:
        return FhirClient.from_settings(
            self.settings, auth=BearerAuth(token) if token else None, base_url=base_url, scoped=scoped
        )

    def shared_client(self) -> FhirClient:
        """This thread's client (a ``requests.Session`` is not thread-safe); every thread's client
        waits its turn at the process's one pacer (``FhirClient.from_settings``)."""
        client = getattr(self._local, "client", None)
        if client is None:
            s = self.settings
            client = self._new_client(s.base_url, s.bearer_token)
            if s.auth_mode == "backend":
                from ..fhir.auth import BackendServicesAuth

                if not (s.backend_token_url and s.backend_client_id and s.backend_key_file):
                    raise Unauthorized(
                        "backend mode needs FHIRCARE_BACKEND_TOKEN_URL, _CLIENT_ID and _KEY_FILE",
                        http_status=401,
                    )
                client.session.auth = BackendServicesAuth.from_key_file(
                    s.backend_token_url,
                    s.backend_client_id,
                    s.backend_key_file,
                    algorithm=signing_algorithm(s.backend_key_file),
                )
            self._local.client = client
        return client

    def authenticate(self) -> None:
        """401 unless the caller is who this auth mode requires (before any scope or patient rule)."""
        mode = self.settings.auth_mode
        if mode == "smart" and g.get("smart_session") is None:
            raise Unauthorized("sign in through the SMART launch first", http_status=401)
        if mode == "passthrough":
            header = request.headers.get("Authorization", "")
            if not header.lower().startswith("bearer ") or len(header) < 10:
                raise Unauthorized("a bearer token is required", http_status=401)
        if self.callers is not None and g.get("caller") is None:
            g.caller = self.callers.verify(request.headers.get("Authorization", ""))

    def client_for_request(self) -> FhirClient:
        """The client a workflow run uses (a patient session's runs are checked by the access guard)."""
        self.authenticate()
        mode = self.settings.auth_mode
        if mode in ("none", "backend"):
            return self.shared_client()
        if mode == "passthrough":
            token = request.headers["Authorization"].split(" ", 1)[1].strip()
            client = self._new_client(self.settings.base_url, token, scoped=True)
        else:
            launch = g.smart_session
            client = self._new_client(launch.iss, launch.access_token, scoped=True)
        g.setdefault("fhircare_clients", []).append(client)
        return client

    def view_client(self) -> FhirClient:
        """The client a view reads through: in a patient session, every answer loses the resources of
        other patients (``_include``d ones too) before the view sees it."""
        client = self.client_for_request()
        patient = patient_in_context()
        if patient is not None:
            client.session.hooks["response"].append(compartment_filter(patient))
        return client


def signing_algorithm(key_file: str) -> str:
    """ES384 for an elliptic-curve private key, else RS384 (the two SMART Backend Services allows)."""
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        key = load_pem_private_key(Path(key_file).read_bytes(), password=None)
    except (OSError, ValueError, TypeError):
        return "RS384"  # BackendServicesAuth reports the unreadable key when it signs
    return "ES384" if isinstance(key, EllipticCurvePrivateKey) else "RS384"


def access() -> FhirAccess:
    found: Any = current_app.extensions["fhircare.access"]
    return found  # type: ignore[no-any-return]


def patient_in_context() -> str | None:
    """``Patient/id`` of a patient-launch session, else None."""
    launch = g.get("smart_session")
    return f"Patient/{launch.patient}" if launch is not None and launch.patient else None


def granted() -> Grant | None:
    """What the current caller was granted, or None where fhircare does not control it (dev,
    passthrough: the FHIR server decides; backend without caller authentication: loopback only)."""
    launch = g.get("smart_session")
    if launch is not None:
        contexts = {"user", "patient"} if launch.patient else {"user"}
        return Grant(frozenset(launch.scopes), frozenset(contexts))
    caller = g.get("caller")
    return caller.grant if caller is not None else None


def require_scopes(resource_types: set[str] | frozenset[str], interactions: str) -> None:
    """403 unless the grant covers every interaction (c, r, u, d, s) on every resource type."""
    grant = granted()
    if grant is None:
        return
    for interaction in interactions:
        missing = sorted(t for t in resource_types if not grant.allows(t, interaction))
        if missing:
            raise ScopeDenied(f"the granted scopes do not allow '{interaction}' on {', '.join(missing)}")


def require_write_scopes(created: set[str], updated: set[str]) -> None:
    """Before a workflow writes: 'c' on every type it may create, 'u' on every type it may update."""
    require_scopes(created, "c")
    require_scopes(updated, "u")
