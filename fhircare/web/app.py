"""Flask app factory, settings checks, and the one JSON error handler (OperationOutcome, never HTML)."""

from __future__ import annotations

import ipaddress
import logging
import math
from typing import Any

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from ..errors import ConfigurationError, FhircareError, RateLimited
from ..settings import Settings

log = logging.getLogger("fhircare.web")
FHIR_JSON = "application/fhir+json"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_settings(settings: Settings, host: str = "127.0.0.1") -> None:
    """Refuse unsafe set-ups: SMART or a non-loopback bind without a secret key and client settings."""
    if settings.auth_mode not in ("none", "smart", "passthrough", "backend"):
        raise ConfigurationError(f"unknown FHIRCARE_AUTH_MODE {settings.auth_mode!r}")
    needs_secret = settings.auth_mode == "smart" or not is_loopback(host)
    if needs_secret and not settings.secret_key:
        raise ConfigurationError("set FHIRCARE_SECRET_KEY: SMART and non-loopback binds need a secret key")
    from .times import known_zone

    if not known_zone(settings.timezone):
        raise ConfigurationError(
            f"FHIRCARE_TIMEZONE {settings.timezone!r} is not a time zone (e.g. America/Chicago)"
        )
    if settings.secret_key is not None and len(settings.secret_key) < 32:
        raise ConfigurationError("FHIRCARE_SECRET_KEY must be at least 32 characters")
    if settings.auth_mode == "smart":
        missing = [
            name
            for name, value in (
                ("FHIRCARE_SMART_CLIENT_ID", settings.smart_client_id),
                ("FHIRCARE_SMART_REDIRECT_URI", settings.smart_redirect_uri),
                ("FHIRCARE_SMART_ISSUERS", settings.smart_issuers),
            )
            if not value
        ]
        if missing:
            raise ConfigurationError(f"SMART mode needs {', '.join(missing)}")
    if settings.auth_mode == "none" and not is_loopback(host):
        raise ConfigurationError(
            "auth mode 'none' is for loopback development only; use smart or passthrough"
        )
    if settings.auth_mode == "backend" and not settings.caller_key_file and not is_loopback(host):
        raise ConfigurationError(
            "backend mode serves every caller with the sidecar's own system token: off loopback it needs "
            "caller authentication (FHIRCARE_CALLER_KEY_FILE and FHIRCARE_CALLER_AUDIENCE)"
        )
    if settings.caller_key_file and not settings.caller_audience:
        raise ConfigurationError("FHIRCARE_CALLER_KEY_FILE needs FHIRCARE_CALLER_AUDIENCE")
    if settings.trusted_proxies < 0:
        raise ConfigurationError("FHIRCARE_TRUSTED_PROXIES must be 0 or more")


def outcome_response(status: int, outcome: dict[str, Any]) -> Response:
    response = jsonify(outcome)
    response.status_code = status
    response.mimetype = FHIR_JSON
    return response


def error_response(exc: FhircareError) -> Response:
    """An error as the sidecar answers it: its status and OperationOutcome; a throttled one (503)
    leads with a ``throttled`` issue saying how long to wait, and any error that knows the wait
    sends it as ``Retry-After`` (whole seconds, rounded up)."""
    outcome = exc.to_outcome()
    if isinstance(exc, RateLimited):
        said = [
            i for i in outcome["issue"] if i.get("code") != "throttled" or i.get("diagnostics") != exc.message
        ]
        outcome["issue"] = [{"severity": "error", "code": "throttled", "diagnostics": exc.message}, *said]
    response = outcome_response(exc.status, outcome)
    wait = getattr(exc, "retry_after", None)
    if isinstance(wait, int | float) and wait >= 0 and exc.status in (429, 503):
        response.headers["Retry-After"] = str(max(1, math.ceil(wait)))
    return response


def create_app(settings: Settings | None = None, host: str = "127.0.0.1", **overrides: Any) -> Flask:
    """Build the sidecar. ``settings`` defaults to the environment; nothing is configured at import."""
    settings = settings or Settings.from_env()
    check_settings(settings, host)
    app = Flask(__name__, static_folder=None)  # the page blueprint serves its own assets
    app.config.update(
        SECRET_KEY=settings.secret_key or _dev_secret(),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        # behind TLS the cookies are Secure: a non-loopback bind, an https redirect URI, or (per request)
        # https as a trusted proxy reports it (FHIRCARE_TRUSTED_PROXIES)
        SESSION_COOKIE_SECURE=not is_loopback(host)
        or (settings.smart_redirect_uri or "").lower().startswith("https://"),
        MAX_CONTENT_LENGTH=1_000_000,
        JSON_SORT_KEYS=False,
        **overrides,
    )
    app.extensions["fhircare.settings"] = settings

    from .api import api
    from .fhir_access import FhirAccess
    from .hardening import init_hardening
    from .policy import init_policy

    init_hardening(app, settings)
    FhirAccess(settings).init_app(app)
    app.register_blueprint(api)
    from .exchange_api import exchange_api
    from .exchange_runtime import init_exchange

    init_exchange(app, settings)  # partners, /metrics (FHIRCARE_METRICS), the sync loop (opt-in)
    app.register_blueprint(exchange_api)
    if settings.auth_mode == "smart":
        from .smart import init_sessions, smart

        init_sessions(app, settings)
        app.register_blueprint(smart)
    _register_pages(app)
    init_policy(app)  # after the session loader: the policy needs to know who is calling

    @app.errorhandler(FhircareError)
    def fhircare_error(exc: FhircareError) -> Response:
        return error_response(exc)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        code = {404: "not-found", 405: "not-supported", 413: "too-costly", 415: "not-supported"}.get(
            status, "invalid"
        )
        return outcome_response(
            status,
            {
                "resourceType": "OperationOutcome",
                "issue": [{"severity": "error", "code": code, "diagnostics": exc.description}],
            },
        )

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Response:  # a true bug: log its type, never the payload
        log.error("unhandled error", extra={"error": type(exc).__name__})
        return outcome_response(
            500,
            {
                "resourceType": "OperationOutcome",
                "issue": [{"severity": "fatal", "code": "exception", "diagnostics": "internal error"}],
            },
        )

    return app


def _register_pages(app: Flask) -> None:
    try:
        from . import (  # noqa: F401 - their routes join the page blueprint
            actions,
            banners,
            coordinators,
            decision_pages,
            exchange_pages,
            new_patient,
            patient_pages,
            report_pages,
            task_pages,
            times,
        )
        from .pages import pages
    except ImportError:  # pragma: no cover - the page module is optional while it is built
        return
    app.register_blueprint(pages)


def _dev_secret() -> str:
    """Loopback development without a configured secret: a random per-process key, never a default."""
    import secrets

    return secrets.token_urlsafe(48)
