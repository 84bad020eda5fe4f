"""Real FHIR servers the test suite can start on loopback, besides fhircare's embedded one."""

from .medplum import MedplumServer, MedplumServerError, RequestCounter

__all__ = ["MedplumServer", "MedplumServerError", "RequestCounter"]
