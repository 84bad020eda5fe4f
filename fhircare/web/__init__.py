"""The sidecar: a Flask app over the workflows and views. ``create_app(settings)``; nothing runs at import."""

from .app import create_app

__all__ = ["create_app"]
