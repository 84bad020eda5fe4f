"""What every answer carries and every request must satisfy, whatever the route.

- Security headers: a Content-Security-Policy the server-rendered page fits (``default-src 'self'``,
  no framing, forms post only here), ``X-Frame-Options``, ``nosniff``, no referrer, and
  ``Cache-Control: no-store`` on everything but the static assets (pages and the API carry PHI).
- Without caller authentication (mode ``none``, or ``backend`` without caller keys: loopback only),
  only loopback host names are answered, so a DNS-rebound name cannot reach the unauthenticated API.
- ``FHIRCARE_TRUSTED_PROXIES=N``: werkzeug's ProxyFix trusts N proxies' X-Forwarded-For/-Proto/-Host
  (https then makes cookies Secure); without it, those headers are ignored.
- The development server's request log loses query strings (``/callback?code=...&state=...``).
"""

from __future__ import annotations

import logging
import re

from flask import Flask, abort, request
from flask.wrappers import Response
from werkzeug.middleware.proxy_fix import ProxyFix

from ..settings import Settings
from .app import is_loopback

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}
QUERY = re.compile(r"\?[^\s\"]*")


def init_hardening(app: Flask, settings: Settings) -> None:
    if settings.trusted_proxies:
        n = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n)  # type: ignore[method-assign]
    if settings.auth_mode == "none" or (settings.auth_mode == "backend" and not settings.caller_key_file):
        app.before_request(loopback_host_only)
    app.after_request(security_headers)
    quiet_request_log()


def loopback_host_only() -> None:
    host = (
        request.host.rsplit(":", 1)[0] if not request.host.startswith("[") else request.host[1:].split("]")[0]
    )
    if not is_loopback(host.lower()):
        abort(400, "this development sidecar answers only loopback host names (localhost, 127.0.0.1, ::1)")


def security_headers(response: Response) -> Response:
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    if not request.path.startswith("/static/"):
        response.headers["Cache-Control"] = "no-store"
    if request.is_secure:
        response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    return response


class DropQueryStrings(logging.Filter):
    """Removes ``?query`` from werkzeug's request lines: codes, state and patient ids stay out of logs."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(QUERY.sub("", a) if isinstance(a, str) else a for a in record.args)
        if isinstance(record.msg, str):
            record.msg = QUERY.sub("", record.msg)
        return True


def quiet_request_log() -> None:
    logger = logging.getLogger("werkzeug")
    if not any(isinstance(f, DropQueryStrings) for f in logger.filters):
        logger.addFilter(DropQueryStrings())
