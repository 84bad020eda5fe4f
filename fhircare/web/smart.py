"""SMART App Launch 2 (EHR and standalone launch, authorization code + PKCE S256, state, refresh).

Flow: /launch checks ``iss`` against the allow-list (an unknown issuer gets 400 and no redirect),
discovers the endpoints from ``.well-known/smart-configuration``, stores state and the PKCE verifier
server-side, and redirects to the authorize endpoint. /callback takes the state once, exchanges the
code, stores the tokens server-side and sets an opaque HttpOnly session cookie.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Flask, current_app, g, redirect, request
from werkzeug.wrappers import Response

from ..errors import FhircareError, PayloadError, Unauthorized
from ..fhir import FhirClient
from ..fhir.auth.smart import exchange_code, new_code_verifier, refresh, s256_challenge
from ..settings import Settings
from .sessions import COOKIE, SESSION_TTL, MemoryStore, RedisStore, Sessions, SmartSession, new_id

smart = Blueprint("smart", __name__)


def settings() -> Settings:
    found: Settings = current_app.extensions["fhircare.settings"]
    return found


def sessions() -> Sessions:
    found: Sessions = current_app.extensions["fhircare.sessions"]
    return found


def init_sessions(app: Flask, settings: Settings) -> None:
    store = RedisStore(settings.redis_url) if settings.redis_url else MemoryStore()
    app.extensions["fhircare.sessions"] = Sessions(store)
    app.before_request(load_session)


def _normal(url: str) -> str:
    return url.rstrip("/")


def allowed_issuer(iss: str | None) -> str:
    allowed = {_normal(i) for i in settings().smart_issuers}
    if not iss or _normal(iss) not in allowed:
        raise PayloadError("this FHIR server (iss) is not on the sidecar's allow-list")
    return _normal(iss)


@smart.get("/launch")
def launch() -> Response:
    s = settings()
    iss = request.args.get("iss") or (s.smart_issuers[0] if s.smart_issuers else None)
    iss = allowed_issuer(iss)
    config = FhirClient(iss).smart_configuration() or {}
    authorize, token = config.get("authorization_endpoint"), config.get("token_endpoint")
    if not authorize or not token:
        raise Unauthorized("the FHIR server publishes no SMART authorize/token endpoints", http_status=401)
    methods = config.get("code_challenge_methods_supported")
    if methods is not None and "S256" not in methods:
        raise Unauthorized("the authorization server does not support PKCE S256", http_status=401)
    state, verifier = new_id(), new_code_verifier()
    launch_token = request.args.get("launch")
    sessions().remember_launch(state, {"iss": iss, "verifier": verifier, "token_endpoint": token})
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
    return redirect(f"{authorize}?{urlencode(query)}", code=302)


@smart.get("/callback")
def callback() -> Response:
    s = settings()
    if request.args.get("error"):
        raise Unauthorized(f"the authorization server said {request.args.get('error')}", http_status=401)
    pending = sessions().take_launch(request.args.get("state", ""))
    if pending is None:
        raise PayloadError("unknown or already used state; start the launch again")
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
    )
    sid = new_id()
    sessions().save(sid, session)
    response = redirect("/", code=302)
    response.set_cookie(
        COOKIE,
        sid,
        max_age=SESSION_TTL,
        httponly=True,
        samesite="Lax",
        secure=current_app.config["SESSION_COOKIE_SECURE"],
        path="/",
    )
    return response


@smart.post("/logout")
def logout() -> Response:
    sid = request.cookies.get(COOKIE)
    if sid:
        sessions().drop(sid)
    response = redirect("/", code=302)
    response.delete_cookie(COOKIE, path="/")
    return response


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
            session.scopes = tokens.scopes
        sessions().save(sid, session)
    g.smart_session = session
    g.session_id = sid


def session_summary() -> dict[str, Any] | None:
    session = g.get("smart_session")
    if session is None:
        return None
    return {"user": session.user, "patient": session.patient, "scopes": session.scopes, "iss": session.iss}
