"""The FHIR layer: HTTP, FHIR and nothing of coordinators."""

from .capabilities import Capabilities
from .client import FhirClient
from .search import Page, SearchSet

__all__ = ["Capabilities", "FhirClient", "Page", "SearchSet"]
