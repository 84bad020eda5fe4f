"""Backend mode: who calls the sidecar. A caller sends ``Authorization: Bearer <JWT>`` signed by a key the
sidecar was given (``FHIRCARE_CALLER_KEY_FILE``, PEM), for its audience (and issuer, when set), not
expired; the token's ``scope`` claim (``system/Task.cu`` ...) is what the caller may do. PyJWT checks it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jwt
from flask import current_app, g

from ..errors import ConfigurationError, FhircareError, ScopeDenied, Unauthorized
from ..settings import Settings
from .scopes import Grant, refuse_malformed

if TYPE_CHECKING:
    from ..exchange.partners import Partner, Partners

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


# ---- the light pattern: callers who are a partner's staff ------------------------------------------

ROLE_TTL = 300.0  # seconds a PractitionerRole answer is kept per user (roles change rarely)
ROLE_CACHE_MAX = 10_000


@dataclass(frozen=True)
class PartnerCaller:
    """A caller who belongs to a partner: every change they make is the performer's (``partner``)."""

    partner: Partner
    identity: str  # the token subject or the user's Practitioner (never logged, never a label)
    user: str | None  # a SMART user's Practitioner, the only actor they may name


def partner_caller() -> PartnerCaller | None:
    """The partner the authenticated caller belongs to (once per request), else None.

    A backend caller by its token's ``sub``; a SMART user by ``fhirUser`` (listed in ``callers``, or,
    with ``callers_by_role``, a Practitioner holding a PractitionerRole at the partner's Organization:
    one search per user per ROLE_TTL per process). Development and passthrough modes know no caller:
    nobody is a partner's there (the FHIR server decides in passthrough)."""
    if "partner_caller" in g:
        found: PartnerCaller | None = g.partner_caller
        return found
    g.partner_caller = None
    holder: Any = current_app.extensions.get("fhircare.exchange")
    partners = holder.partners if holder is not None else None
    if holder is None or partners is None or not partners.partners:
        return None
    caller, launch = g.get("caller"), g.get("smart_session")
    if caller is not None:
        partner = partners.of_caller(caller.subject)
        g.partner_caller = PartnerCaller(partner, caller.subject, None) if partner else None
    elif launch is not None and launch.user:
        user = own_reference(str(launch.user), (launch.iss, holder.settings.base_url))
        partner = partners.of_caller(user) or _by_role(holder, partners, user, launch.iss)
        g.partner_caller = PartnerCaller(partner, user, user) if partner else None
    return g.partner_caller  # type: ignore[no-any-return]


def own_reference(user: str, bases: tuple[str, ...]) -> str:
    """``fhirUser`` as ``Type/id`` when it is absolute under one of ``bases`` (else as given)."""
    for base in bases:
        prefix = base.rstrip("/") + "/"
        if user.startswith(prefix):
            return user[len(prefix) :]
    return user


def _by_role(holder: Any, partners: Partners, user: str, iss: str) -> Partner | None:
    """A Practitioner with an active PractitionerRole at a ``callers_by_role`` partner's Organization."""
    wanted = {p.organization: p for p in partners.partners.values() if p.callers_by_role}
    if not wanted or not user.startswith("Practitioner/"):
        return None
    cache: dict[tuple[str, str], tuple[float, str]] = holder.role_cache
    key = (iss, user)
    hit = cache.get(key)
    if hit is not None and hit[0] > time.monotonic():
        return partners.partners.get(hit[1])
    from .fhir_access import access

    params = {"practitioner": user, "organization": ",".join(sorted(wanted)), "_count": "50"}
    try:
        roles = list(access().client_for_request().search("PractitionerRole", params))
    except FhircareError:
        raise ScopeDenied("cannot tell whether this user is a partner's staff (PractitionerRole)") from None
    orgs = {
        str((role.get("organization") or {}).get("reference"))
        for role in roles
        if role.get("active") is not False and (role.get("practitioner") or {}).get("reference") == user
    }
    matched = sorted(p.name for org, p in wanted.items() if org in orgs)
    if len(matched) > 1:
        raise ScopeDenied("this user holds roles at more than one partner; list them under one's callers")
    if len(cache) >= ROLE_CACHE_MAX:
        cache.clear()
    cache[key] = (time.monotonic() + ROLE_TTL, matched[0] if matched else "")
    return partners.partners.get(matched[0]) if matched else None
