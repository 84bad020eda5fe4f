"""gunicorn entry point: ``FHIRCARE_BIND_HOST=127.0.0.1 gunicorn -w 2 -b 127.0.0.1:8080 'fhircare.web.wsgi:app()'``."""

from __future__ import annotations

from flask import Flask

from ..settings import Settings
from . import create_app


def app() -> Flask:
    """Settings from the environment; FHIRCARE_BIND_HOST (the address gunicorn binds) decides the loopback checks."""
    settings = Settings.from_env()
    return create_app(settings, host=settings.bind_host)
