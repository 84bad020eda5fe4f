"""SMART App Launch: the token endpoint calls (authorization code with PKCE, refresh), via Authlib."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from ...errors import Unauthorized


@dataclass
class TokenSet:
    """What a token endpoint granted (kept server-side only)."""

    access_token: str
    refresh_token: str | None
    expires_at: float
    scopes: list[str]
    patient: str | None = None
    user: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, token: dict[str, Any]) -> TokenSet:
        if not token.get("access_token"):
            raise Unauthorized("the token endpoint answered without an access token")
        expires_in = float(token.get("expires_in") or 300)
        return cls(
            access_token=str(token["access_token"]),
            refresh_token=token.get("refresh_token"),
            expires_at=float(token.get("expires_at") or time.time() + expires_in),
            scopes=str(token.get("scope") or "").split(),
            patient=token.get("patient"),
            user=token.get("fhirUser") or token.get("user"),
        )

    def expired(self, margin: float = 30.0) -> bool:
        return time.time() + margin >= self.expires_at


def new_code_verifier() -> str:
    return str(generate_token(64))


def s256_challenge(verifier: str) -> str:
    return str(create_s256_code_challenge(verifier))


def _session(client_id: str, client_secret: str | None, redirect_uri: str | None = None) -> OAuth2Session:
    auth_method = "client_secret_basic" if client_secret else "none"
    return OAuth2Session(
        client_id=client_id,
        client_secret=client_secret,
        redirect_uri=redirect_uri,
        token_endpoint_auth_method=auth_method,
        timeout=(3.05, 30),
    )


def exchange_code(
    token_endpoint: str,
    code: str,
    redirect_uri: str,
    client_id: str,
    code_verifier: str,
    client_secret: str | None = None,
) -> TokenSet:
    """Authorization code + PKCE verifier -> tokens."""
    with _session(client_id, client_secret, redirect_uri) as oauth:
        try:
            token = oauth.fetch_token(
                token_endpoint, grant_type="authorization_code", code=code, code_verifier=code_verifier
            )
        except Exception as exc:  # Authlib raises OAuthError and requests errors; both mean "not signed in"
            raise Unauthorized(
                f"the token endpoint refused the code ({type(exc).__name__})", http_status=401
            ) from None
    return TokenSet.of(dict(token))


def refresh(
    token_endpoint: str, refresh_token: str, client_id: str, client_secret: str | None = None
) -> TokenSet:
    with _session(client_id, client_secret) as oauth:
        try:
            token = oauth.refresh_token(token_endpoint, refresh_token=refresh_token)
        except Exception as exc:
            raise Unauthorized(
                f"the token could not be refreshed ({type(exc).__name__})", http_status=401
            ) from None
    return TokenSet.of(dict(token))


def revoke(
    revocation_endpoint: str, token: str, hint: str, client_id: str, client_secret: str | None = None
) -> None:
    """Ask the authorization server to revoke a token (RFC 7009); a refusal is reported, not hidden."""
    with _session(client_id, client_secret) as oauth:
        try:
            answer = oauth.revoke_token(revocation_endpoint, token=token, token_type_hint=hint)
        except Exception as exc:  # Authlib and requests errors alike: the token may still be live
            raise Unauthorized(f"the token could not be revoked ({type(exc).__name__})") from None
    if answer.status_code >= 400:
        raise Unauthorized(f"the token could not be revoked (HTTP {answer.status_code})")
