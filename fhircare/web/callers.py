"""Backend mode: who calls the sidecar. A caller sends ``Authorization: Bearer <JWT>`` signed by a key the
sidecar was given (``FHIRCARE_CALLER_KEY_FILE``, PEM), for its audience (and issuer, when set), not
expired; the token's ``scope`` claim (``system/Task.cu`` ...) is what the caller may do. PyJWT checks it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import jwt

from ..errors import ConfigurationError, Unauthorized
from ..settings import Settings
from .scopes import Grant, refuse_malformed

ALGORITHMS = ["RS256", "RS384", "ES256", "ES384"]
MAX_LIFETIME = 3600  # seconds between iat and exp; a longer-lived caller token is refused


@dataclass(frozen=True)
class Caller:
    subject: str
    grant: Grant


class CallerVerifier:
    def __init__(self, settings: Settings) -> None:
        if not settings.caller_key_file or not settings.caller_audience:
            raise ConfigurationError("caller authentication needs FHIRCARE_CALLER_KEY_FILE and _AUDIENCE")
        try:
            self.key = Path(settings.caller_key_file).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigurationError(
                f"FHIRCARE_CALLER_KEY_FILE cannot be read ({type(exc).__name__})"
            ) from None
        self.audience = settings.caller_audience
        self.issuer = settings.caller_issuer

    def verify(self, authorization: str) -> Caller:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("a bearer token is required", http_status=401)
        try:
            claims = jwt.decode(
                token.strip(),
                self.key,
                algorithms=ALGORITHMS,
                audience=self.audience,
                issuer=self.issuer,
                options={"require": ["exp", "iat", "sub", "aud"]},
            )
        except jwt.PyJWTError as exc:
            raise Unauthorized(
                f"the bearer token is not valid ({type(exc).__name__})", http_status=401
            ) from None
        if int(claims["exp"]) - int(claims["iat"]) > MAX_LIFETIME:
            raise Unauthorized("the bearer token lives longer than an hour", http_status=401)
        scopes = str(claims.get("scope") or "").split()
        refuse_malformed(scopes, {"system"})
        return Caller(str(claims["sub"]), Grant(frozenset(scopes), frozenset({"system"})))
