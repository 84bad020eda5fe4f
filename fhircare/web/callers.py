"""Backend mode: who calls the sidecar. A caller sends ``Authorization: Bearer <JWT>`` signed by a key the
sidecar was given (``FHIRCARE_CALLER_KEY_FILE``, PEM), for its audience (and issuer, when set), not
expired; the token's ``scope`` claim (``system/Task.cu`` ...) is what the caller may do. PyJWT checks it.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import jwt
from flask import current_app, g

from .. import clock
from ..errors import ConfigurationError, FhircareError, ScopeDenied, Unauthorized
from ..mapping.transforms import parse_datetime
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
PERSON = re.compile(r"^(Practitioner|PractitionerRole)/[A-Za-z0-9\-.]{1,64}$")
ENDED = " ended"  # cached for a user whose only partner role has ended (no partner name has a space)
UNPLACED = (
    "this sidecar serves partners' staff: a signed-in user must be a Practitioner or PractitionerRole on "
    "our FHIR server (fhirUser relative, or absolute under the SMART issuer or our base); this one is not, "
    "so nothing is shown or written"
)
ROLE_ENDED = "this user's role at a partner organization has ended and they hold no active role at ours"


@dataclass(frozen=True)
class PartnerCaller:
    """A caller who belongs to a partner: every change they make is the performer's (``partner``)."""

    partner: Partner
    identity: str  # the token subject or the user's Practitioner (never logged, never a label)
    user: str | None  # a SMART user's Practitioner (or PractitionerRole), the only actor they may name


def partner_caller() -> PartnerCaller | None:
    """The partner the authenticated caller belongs to (once per request), else None.

    A backend caller by its token's ``sub``. A SMART user by ``fhirUser`` (:func:`place_user`) once
    some partner has ``callers`` or ``callers_by_role`` (the light guard): then a user the sidecar
    cannot place is refused (403), never taken for one of our coordinators. Development and
    passthrough modes know no caller: nobody is a partner's there (the FHIR server decides in
    passthrough)."""
    if "partner_caller" in g:
        found: PartnerCaller | None = g.partner_caller
        return found
    holder: Any = current_app.extensions.get("fhircare.exchange")
    partners = holder.partners if holder is not None else None
    caller, launch = g.get("caller"), g.get("smart_session")
    found = None
    if holder is None or partners is None or not partners.partners:
        pass
    elif caller is not None:
        partner = partners.of_caller(caller.subject)
        found = PartnerCaller(partner, caller.subject, None) if partner else None
    elif launch is not None and _guarded(partners):
        user = local_person(str(launch.user or ""), (launch.iss, holder.settings.base_url, partners.base))
        partner = place_user(holder, partners, user, launch.iss)
        found = PartnerCaller(partner, user, user) if partner else None
    g.partner_caller = found
    return found


def _guarded(partners: Partners) -> bool:
    return any(p.callers or p.callers_by_role for p in partners.partners.values())


def own_reference(user: str, bases: tuple[str | None, ...]) -> str:
    """``fhirUser`` as ``Type/id`` when it is absolute under one of ``bases`` (else as given). Bases
    compare by host (any case) and port (a scheme's default port is no port; the scheme itself is not
    compared: one server behind http and https), then path (trailing slashes ignored)."""
    if "://" not in user:
        return user
    try:
        named = _server(user)
    except ValueError:
        return user
    for base in filter(None, bases):
        try:
            wanted = _server(base)
        except ValueError:
            continue
        if named[:2] == wanted[:2] and named[2].startswith(wanted[2] + "/"):
            return named[2][len(wanted[2]) + 1 :].lstrip("/")
    return user


def _server(url: str) -> tuple[str, int | None, str]:
    """(host, port or None for the scheme's default, path without trailing slash); ValueError for a
    URL with credentials, a query or a fragment (nothing we name looks like that)."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError("not an http(s) URL")
    if parts.username is not None or parts.query or parts.fragment:
        raise ValueError("a URL with credentials, query or fragment")
    port = parts.port
    if port == {"http": 80, "https": 443}[parts.scheme.lower()]:
        port = None
    return parts.hostname.lower(), port, parts.path.rstrip("/")


def local_person(user: str, bases: tuple[str | None, ...]) -> str:
    """The signed-in user as ``Practitioner/<id>`` or ``PractitionerRole/<id>`` on our server; anyone
    else (no fhirUser, another type, absolute under a base we do not know) is 403: fail closed."""
    reference = own_reference(user, bases)
    if not PERSON.match(reference):
        raise ScopeDenied(UNPLACED)
    return reference


def place_user(holder: Any, partners: Partners, user: str, iss: str) -> Partner | None:
    """The partner a SMART user (``Practitioner/`` or ``PractitionerRole/`` on our server) belongs to:
    listed under ``callers``; or a PractitionerRole (the fhirUser itself, one read) at a partner's
    Organization; or, under ``callers_by_role``, a Practitioner with an active role there (one
    search). A user listed under one partner and holding a role at another is 403."""
    practitioner, organization = user, None
    if user.startswith("PractitionerRole/"):
        practitioner, organization = _role_of(holder, user, iss)
    listed = partners.of_caller(practitioner)
    by_org = partners.owning(organization)
    if listed is not None and by_org not in (None, listed):
        raise ScopeDenied("this user is listed under one partner and acts in a role at another")
    return listed or by_org or _by_role(holder, partners, practitioner, iss)


def _cached(holder: Any, key: tuple[str, str]) -> str | None:
    hit: tuple[float, str] | None = holder.role_cache.get(key)
    return hit[1] if hit is not None and hit[0] > time.monotonic() else None


def _remember(holder: Any, key: tuple[str, str], answer: str) -> None:
    cache: dict[tuple[str, str], tuple[float, str]] = holder.role_cache
    if len(cache) >= ROLE_CACHE_MAX:
        cache.clear()
    cache[key] = (time.monotonic() + ROLE_TTL, answer)


def _role_of(holder: Any, role: str, iss: str) -> tuple[str, str | None]:
    """A fhirUser PractitionerRole's (Practitioner, Organization), cached like the role search; a role
    that is not there, names no Practitioner or has ended is 403."""
    answer = _cached(holder, (iss, role))
    if answer is None:
        from .fhir_access import access

        try:
            found = access().client_for_request().read_reference(role)
        except FhircareError:
            raise ScopeDenied("cannot tell whose this PractitionerRole is (read refused)") from None
        practitioner = str((found.get("practitioner") or {}).get("reference") or "")
        organization = str((found.get("organization") or {}).get("reference") or "")
        fine = practitioner.startswith("Practitioner/") and " " not in practitioner + organization
        answer = f"{practitioner} {organization}" if fine and role_active(found) else ENDED
        _remember(holder, (iss, role), answer)
    if answer == ENDED:
        raise ScopeDenied("this PractitionerRole has ended or names no Practitioner")
    practitioner, _, organization = answer.partition(" ")
    return practitioner, organization or None


def role_active(role: dict[str, Any]) -> bool:
    """Not ``active: false`` and now within its ``period`` (a date-only end lasts that whole day); a
    period that cannot be read is not active (fail closed)."""
    if role.get("active") is False:
        return False
    period, now = role.get("period") or {}, clock.now()
    try:
        start, end = period.get("start"), period.get("end")
        if start and parse_datetime(str(start)) > now:
            return False
        if end:
            ends = parse_datetime(str(end)) + (timedelta(days=1) if "T" not in str(end) else timedelta())
            return bool(ends > now)
    except ValueError:
        return False
    return True


def _by_role(holder: Any, partners: Partners, user: str, iss: str) -> Partner | None:
    """A Practitioner with an active PractitionerRole at a ``callers_by_role`` partner's Organization.
    One whose roles there have all ended, with no active role at our Organization, is 403 (their
    access does not outlive the role: fail closed)."""
    wanted = {p.organization: p for p in partners.partners.values() if p.callers_by_role}
    if not wanted:
        return None
    answer = _cached(holder, (iss, user))
    if answer is None:
        answer = _search_roles(partners, user, wanted)
        _remember(holder, (iss, user), answer)
    if answer == ENDED:
        raise ScopeDenied(ROLE_ENDED)
    return partners.partners.get(answer) if answer else None


def _search_roles(partners: Partners, user: str, wanted: dict[str, Partner]) -> str:
    from .fhir_access import access

    orgs = ",".join(sorted({*wanted, partners.organization}))
    params = {"practitioner": user, "organization": orgs, "_count": "50"}
    try:
        roles = list(access().client_for_request().search("PractitionerRole", params))
    except FhircareError:
        raise ScopeDenied("cannot tell whether this user is a partner's staff (PractitionerRole)") from None
    held = [
        (str((role.get("organization") or {}).get("reference")), role_active(role))
        for role in roles
        if (role.get("practitioner") or {}).get("reference") == user
    ]
    matched = sorted({wanted[org].name for org, active in held if active and org in wanted})
    if len(matched) > 1:
        raise ScopeDenied("this user holds roles at more than one partner; list them under one's callers")
    if matched:
        return matched[0]
    ours = any(active and org == partners.organization for org, active in held)
    return ENDED if not ours and any(org in wanted for org, _ in held) else ""
