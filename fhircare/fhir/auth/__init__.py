"""Auth plugins for the FHIR client: ``requests.auth.AuthBase`` subclasses, and SMART token calls."""

from typing import Any

from .bearer import BearerAuth

__all__ = ["BackendServicesAuth", "BearerAuth"]


def __getattr__(name: str) -> Any:
    # Backend Services needs PyJWT (the 'web' extra): imported on first use, so a base install works
    if name == "BackendServicesAuth":
        from .backend import BackendServicesAuth

        return BackendServicesAuth
    raise AttributeError(name)
