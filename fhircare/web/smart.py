"""SMART App Launch 2 (EHR and standalone launch, authorization code + PKCE S256, state, refresh).

Flow: /launch checks ``iss`` against the allow-list (an unknown issuer gets 400 and no redirect),
discovers the endpoints from ``.well-known/smart-configuration`` (cached per issuer for a few minutes;
a pinned token endpoint must match), stores state and the PKCE verifier server-side, binds them to
this browser with a short-lived HttpOnly cookie, and redirects to the authorize endpoint. /callback
takes the state once, only from the browser that started the launch, exchanges the code, refuses
malformed scopes, stores the tokens server-side and sets an opaque HttpOnly session cookie. /logout
(CSRF-checked) drops the session and revokes its tokens where the server offers revocation.
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Flask, current_app, g, redirect, request
from werkzeug.wrappers import Response

from ..errors import FhircareError, PayloadError, Unauthorized
from ..fhir import FhirClient
from ..fhir.auth.smart import exchange_code, new_code_verifier, refresh, revoke, s256_challenge
from ..settings import Settings
from .csrf import check_csrf
from .scopes import malformed, refuse_malformed
from .sessions import (
    COOKIE,
    LAUNCH_COOKIE,
    LAUNCH_TTL,
    MAX_PENDING_LAUNCHES,
    SESSION_TTL,
    MemoryStore,
    RedisStore,
    Sessions,
    SmartSession,
    new_id,
    session_cipher,
)

smart = Blueprint("smart", __name__)
log = logging.getLogger("fhircare.web")
DISCOVERY_TTL = 300.0


def settings() -> Settings:
    found: Settings = current_app.extensions["fhircare.settings"]
    return found


def sessions() -> Sessions:
    found: Sessions = current_app.extensions["fhircare.sessions"]
    return found


def init_sessions(app: Flask, settings: Settings) -> None:
    assert settings.secret_key  # check_settings refuses SMART without one
    cipher = session_cipher(settings.secret_key)
    if settings.redis_url:
        store = RedisStore(settings.redis_url)
        app.extensions["fhircare.sessions"] = Sessions(store, cipher)
    else:
        app.extensions["fhircare.sessions"] = Sessions(
            MemoryStore(), cipher, launches=MemoryStore(max_items=MAX_PENDING_LAUNCHES)
        )
    app.extensions["fhircare.discovery"] = Discovery()
    app.before_request(load_session)


class Discovery:
    """``.well-known/smart-configuration`` per issuer, kept for DISCOVERY_TTL seconds."""

    def __init__(self) -> None:
        self._found: dict[str, tuple[float, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def of(self, iss: str) -> dict[str, Any]:
        with self._lock:
            cached = self._found.get(iss)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        with FhirClient(iss) as client:
            config = client.smart_configuration() or {}
        with self._lock:
            self._found[iss] = (time.monotonic() + DISCOVERY_TTL, config)
        return config


def _normal(url: str) -> str:
    return url.rstrip("/")


def allowed_issuer(iss: str | None) -> str:
    allowed = {_normal(i) for i in settings().smart_issuers}
    if not iss or _normal(iss) not in allowed:
        raise PayloadError("this FHIR server (iss) is not on the sidecar's allow-list")
    return _normal(iss)


def secure_cookies() -> bool:
    """Secure cookies behind TLS: configured so (non-loopback bind, https redirect URI), or this request
    came over https (directly, or through a trusted proxy's X-Forwarded-Proto)."""
    return bool(current_app.config["SESSION_COOKIE_SECURE"]) or request.is_secure


def endpoints(iss: str) -> tuple[str, str, str | None]:
    """(authorize, token, revocation) endpoints of an issuer, checked against its pin, if any."""
    config: dict[str, Any] = current_app.extensions["fhircare.discovery"].of(iss)
    authorize, token = config.get("authorization_endpoint"), config.get("token_endpoint")
    if not authorize or not token:
        raise Unauthorized("the FHIR server publishes no SMART authorize/token endpoints", http_status=401)
    methods = config.get("code_challenge_methods_supported")
    if methods is not None and "S256" not in methods:
        raise Unauthorized("the authorization server does not support PKCE S256", http_status=401)
    pinned = {_normal(i): t for i, t in settings().smart_token_endpoints}.get(iss)
    if pinned is not None and _normal(str(token)) != _normal(pinned):
        raise Unauthorized("the issuer names a token endpoint other than the pinned one", http_status=401)
    revocation = config.get("revocation_endpoint")
    return str(authorize), str(token), str(revocation) if revocation else None


@smart.get("/launch")
def launch() -> Response:
    s = settings()
    iss = request.args.get("iss") or (s.smart_issuers[0] if s.smart_issuers else None)
    iss = allowed_issuer(iss)
    authorize, token, revocation = endpoints(iss)
    state, verifier, browser = new_id(), new_code_verifier(), new_id()
    launch_token = request.args.get("launch")
    sessions().remember_launch(
        state,
        {
            "iss": iss,
            "verifier": verifier,
            "token_endpoint": token,
            "revocation_endpoint": revocation,
            "browser": browser,
        },
    )
    scope = s.smart_scopes if launch_token else s.smart_scopes.replace("launch ", "launch/patient ")
    query = {
        "response_type": "code",
        "client_id": s.smart_client_id,
        "redirect_uri": s.smart_redirect_uri,
        "scope": scope,
        "state": state,
        "aud": iss,
        "code_challenge": s256_challenge(verifier),
        "code_challenge_method": "S256",
    }
    if launch_token:
        query["launch"] = launch_token
    response = redirect(f"{authorize}?{urlencode(query)}", code=302)
    response.set_cookie(
        LAUNCH_COOKIE,
        browser,
        max_age=LAUNCH_TTL,
        httponly=True,
        samesite="Lax",
        secure=secure_cookies(),
        path="/callback",
    )
    return response


@smart.get("/callback")
def callback() -> Response:
    s = settings()
    if request.args.get("error"):
        raise Unauthorized("the authorization server refused the sign-in", http_status=401)
    pending = sessions().take_launch(request.args.get("state", ""))
    if pending is None:
        raise PayloadError("unknown or already used state; start the launch again")
    browser = request.cookies.get(LAUNCH_COOKIE, "")
    if not browser or not hmac.compare_digest(browser, str(pending.get("browser", ""))):
        raise PayloadError("this sign-in was started in another browser; start the launch again")
    code = request.args.get("code")
    if not code:
        raise PayloadError("the authorization server sent no code")
    assert s.smart_client_id and s.smart_redirect_uri
    tokens = exchange_code(
        pending["token_endpoint"],
        code,
        s.smart_redirect_uri,
        s.smart_client_id,
        pending["verifier"],
        s.smart_client_secret,
    )
    refuse_malformed(tokens.scopes, {"user", "patient"})
    session = SmartSession(
        access_token=tokens.access_token,
        refresh_token=tokens.refresh_token,
        expires_at=tokens.expires_at,
        scopes=tokens.scopes,
        patient=tokens.patient,
        user=tokens.user,
        iss=pending["iss"],
        token_endpoint=pending["token_endpoint"],
        csrf=new_id(),
        revocation_endpoint=pending.get("revocation_endpoint"),
    )
    sid = new_id()
    sessions().save(sid, session)
    response = redirect("/", code=302)
    secure = secure_cookies()
    response.set_cookie(
        COOKIE, sid, max_age=SESSION_TTL, httponly=True, samesite="Lax", secure=secure, path="/"
    )
    response.delete_cookie(LAUNCH_COOKIE, path="/callback", httponly=True, samesite="Lax", secure=secure)
    return response


@smart.post("/logout")
def logout() -> Response:
    check_csrf()
    sid = request.cookies.get(COOKIE)
    session = sessions().load(sid)
    if sid:
        sessions().drop(sid)
    if session is not None and session.revocation_endpoint:
        _revoke(session)
    response = redirect("/", code=302)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="Lax", secure=secure_cookies())
    return response


def _revoke(session: SmartSession) -> None:
    s = settings()
    assert s.smart_client_id and session.revocation_endpoint
    tokens = [(session.refresh_token, "refresh_token"), (session.access_token, "access_token")]
    for token, hint in tokens:
        if not token:
            continue
        try:
            revoke(session.revocation_endpoint, token, hint, s.smart_client_id, s.smart_client_secret)
        except FhircareError as exc:  # signed out here regardless; say so in the log (no token in it)
            log.warning("token revocation failed", extra={"hint": hint, "error": type(exc).__name__})


def load_session() -> None:
    """Before each request: the caller's SMART session, refreshed when its access token is expiring."""
    if "fhircare.sessions" not in current_app.extensions:
        return
    sid = request.cookies.get(COOKIE)
    session = sessions().load(sid)
    if session is None or sid is None:
        return
    if time.time() + 30 >= session.expires_at and session.refresh_token:
        s = settings()
        assert s.smart_client_id
        try:
            tokens = refresh(
                session.token_endpoint, session.refresh_token, s.smart_client_id, s.smart_client_secret
            )
        except FhircareError:
            sessions().drop(sid)
            return
        session.access_token = tokens.access_token
        session.refresh_token = tokens.refresh_token or session.refresh_token
        session.expires_at = tokens.expires_at
        if tokens.scopes:
            if malformed(tokens.scopes, {"user", "patient"}):
                sessions().drop(sid)
                return
            session.scopes = tokens.scopes
        sessions().save(sid, session)
    g.smart_session = session
    g.session_id = sid


def session_summary() -> dict[str, Any] | None:
    session = g.get("smart_session")
    if session is None:
        return None
    return {"user": session.user, "patient": session.patient, "scopes": session.scopes, "iss": session.iss}
