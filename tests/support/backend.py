"""The sidecar in backend mode for tests: an EC key pair, the system client registered with the test
authorization server (SMART Backend Services towards the FHIR server), the callers' public key written
down, and the Settings that name them; caller tokens signed with the matching private key."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from fhircare.settings import Settings
from tests.integration.sidecar_harness import SECRET
from tests.integration.smart_server import Client

AUDIENCE = "fhircare-sidecar"


def ec_key() -> tuple[str, str]:
    """A P-384 key pair as PEM: (private PKCS8, public SubjectPublicKeyInfo)."""
    key = ec.generate_private_key(ec.SECP384R1())
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public.decode()


def backend_settings(
    auth: Any, folder: Path, client_id: str = "system-1", **extra: Any
) -> tuple[Settings, str]:
    """Settings for a backend-mode sidecar whose system client ``client_id`` is registered with
    ``auth``; returns them with the callers' private key (sign tokens with :func:`caller_token`)."""
    system_private, system_public = ec_key()
    auth.register(
        Client(
            client_id,
            [],
            public_key_pem=system_public,
            grant_types=("client_credentials",),
            auth_method="client_assertion_jwt",
        )
    )
    (folder / "system.pem").write_text(system_private)
    caller_private, caller_public = ec_key()
    (folder / "callers.pem").write_text(caller_public)
    settings = Settings(
        **{
            "base_url": auth.iss,
            "auth_mode": "backend",
            "secret_key": SECRET,
            "backend_token_url": f"{auth.base}/token",
            "backend_client_id": client_id,
            "backend_key_file": str(folder / "system.pem"),
            "caller_key_file": str(folder / "callers.pem"),
            "caller_audience": AUDIENCE,
            **extra,
        }
    )
    return settings, caller_private


def caller_token(
    private_pem: str, scope: str, subject: str = "scheduler", audience: str = AUDIENCE, lifetime: int = 300
) -> str:
    """A caller's bearer JWT (ES384) for the sidecar."""
    now = int(time.time())
    claims = {"sub": subject, "aud": audience, "iat": now, "exp": now + lifetime, "scope": scope}
    return jwt.encode(claims, private_pem, algorithm="ES384")
