"""Who a client acts as, in a form that keys what is learned about a server and holds no secret.

One base URL may serve tenants that behave differently (Medplum projects with and without
transaction bundles, Azure tenants): what fhircare learns is kept per base URL and identity. The
identity is, first found:

- an explicit profile name (``FHIRCARE_SERVER_PROFILE``): every client using it shares what is learned;
- for a JWT access token, a digest of the claims that name who and where it acts (issuer, subject,
  client, tenant, profile), read without verifying the signature: only a cache key is made of them;
- for SMART Backend Services, a digest of its token endpoint and client id;
- for any other bearer token, a digest of the token; for HTTP basic auth, of the user name;
- nothing (no credentials): the base URL alone.

Tokens are never stored: only a truncated SHA-256 digest, which cannot give the token back.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from typing import Any

#: the claims of a JWT that tell identities and tenants apart (others, such as exp or jti, change per token)
IDENTITY_CLAIMS = ("iss", "sub", "client_id", "azp", "cid", "tid", "tenant", "profile", "fhirUser")


def identity_of(auth: Any, profile: str | None = None) -> str:
    """The identity part of the key of what is learned (``""`` for a client without credentials)."""
    if profile:
        return f"profile:{profile}"
    if auth is None:
        return ""
    client_id = getattr(auth, "client_id", None)
    token_url = getattr(auth, "token_url", None)
    if isinstance(client_id, str) and isinstance(token_url, str):  # Backend Services: no token needed
        return "client:" + _digest(token_url, client_id)
    token_of = getattr(auth, "token", None)
    if callable(token_of):
        token = token_of()
        if isinstance(token, str) and token:
            return token_identity(token)
    username = getattr(auth, "username", None)
    if isinstance(username, (str, bytes)):
        return "user:" + _digest(username if isinstance(username, str) else username.decode("latin-1"))
    return "auth:" + type(auth).__name__


def token_identity(token: str) -> str:
    """``jwt:<digest of its identity claims>`` for a JWT, else ``token:<digest of the token>``."""
    claims = jwt_claims(token)
    named = [(name, claims.get(name)) for name in IDENTITY_CLAIMS if claims.get(name) is not None]
    if named:
        return "jwt:" + _digest(*(f"{name}={value}" for name, value in named))
    return "token:" + _digest(token)


def jwt_claims(token: str) -> dict[str, Any]:
    """The payload of a JWT, decoded without verifying it; ``{}`` when the token is not one."""
    parts = token.split(".")
    if len(parts) != 3:
        return {}
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload.encode("ascii")))
    except (binascii.Error, UnicodeError, ValueError):
        return {}
    return claims if isinstance(claims, dict) else {}


def _digest(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode("utf-8")).hexdigest()[:16]
