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

Tokens are never stored: only a truncated HMAC-SHA256 digest keyed by a random secret kept beside
what is learned (``servers.key``, see :meth:`~fhircare.fhir.behaviour.BehaviourStore.secret`), so a
guessable token cannot be found again by hashing guesses against the file alone.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from collections.abc import Callable
from typing import Any

#: the claims of a JWT that tell identities and tenants apart (others, such as exp or jti, change per token)
IDENTITY_CLAIMS = ("iss", "sub", "client_id", "azp", "cid", "tid", "tenant", "profile", "fhirUser")
#: the key of the digests when the caller gives none (this process only)
_PROCESS_SECRET = secrets.token_bytes(32)

Secret = Callable[[], bytes]


def identity_of(auth: Any, profile: str | None = None, secret: Secret | None = None) -> str:
    """The identity part of the key of what is learned (``""`` for a client without credentials);
    ``secret`` gives the key of its digests (asked only when a digest is made; default: a key of
    this process only)."""
    key = secret or (lambda: _PROCESS_SECRET)
    if profile:
        return f"profile:{profile}"
    if auth is None:
        return ""
    client_id = getattr(auth, "client_id", None)
    token_url = getattr(auth, "token_url", None)
    if isinstance(client_id, str) and isinstance(token_url, str):  # Backend Services: no token needed
        return "client:" + _digest(key, token_url, client_id)
    token_of = getattr(auth, "token", None)
    if callable(token_of):
        token = token_of()
        if isinstance(token, str) and token:
            return token_identity(token, key)
    username = getattr(auth, "username", None)
    if isinstance(username, (str, bytes)):
        name = username if isinstance(username, str) else username.decode("latin-1")
        return "user:" + _digest(key, name)
    return "auth:" + type(auth).__name__


def token_identity(token: str, secret: Secret | None = None) -> str:
    """``jwt:<digest of its identity claims>`` for a JWT, else ``token:<digest of the token>``."""
    key = secret or (lambda: _PROCESS_SECRET)
    claims = jwt_claims(token)
    named = [(name, claims.get(name)) for name in IDENTITY_CLAIMS if claims.get(name) is not None]
    if named:
        return "jwt:" + _digest(key, *(f"{name}={value}" for name, value in named))
    return "token:" + _digest(key, token)


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


def _digest(secret: Secret, *parts: str) -> str:
    return hmac.new(secret(), "\n".join(parts).encode("utf-8"), hashlib.sha256).hexdigest()[:16]
