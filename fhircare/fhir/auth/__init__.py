"""Auth plugins for the FHIR client: ``requests.auth.AuthBase`` subclasses."""

from .bearer import BearerAuth

__all__ = ["BearerAuth"]
