"""Auth plugins for the FHIR client: ``requests.auth.AuthBase`` subclasses, and SMART token calls."""

from .backend import BackendServicesAuth
from .bearer import BearerAuth

__all__ = ["BackendServicesAuth", "BearerAuth"]
