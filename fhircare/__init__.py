"""fhircare: care coordinators' work on FHIR R4."""

from .errors import (
    Conflict,
    FhircareError,
    FhirServerError,
    IllegalTransition,
    NotFound,
    PayloadError,
    PreconditionFailed,
    TransientError,
    UnknownWorkflow,
)
from .fhir import FhirClient
from .settings import Settings

__version__ = "0.1.0"

__all__ = [
    "Conflict",
    "FhirClient",
    "FhirServerError",
    "FhircareError",
    "IllegalTransition",
    "NotFound",
    "PayloadError",
    "PreconditionFailed",
    "Settings",
    "TransientError",
    "UnknownWorkflow",
    "__version__",
]
