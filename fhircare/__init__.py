"""fhircare: care coordinators' work on FHIR R4.

>>> from fhircare import FhirClient, run, worklist
>>> with FhirClient("http://127.0.0.1:8765/fhir") as client:
...     result = run("refer", payload, client)
"""

import logging

from .errors import (
    ConfigurationError,
    Conflict,
    FhircareError,
    FhirServerError,
    Forbidden,
    Gone,
    IllegalTransition,
    NotFound,
    PartialWrite,
    PayloadError,
    PreconditionFailed,
    ScopeDenied,
    ServerValidationError,
    TransientError,
    Unauthorized,
    UnknownWorkflow,
    UnresolvedReference,
    UnresolvedStoredReference,
)
from .fhir import FhirClient
from .settings import Settings
from .views.authorizations import authorizations
from .views.caseload import caseload
from .views.gaps import find_gaps
from .views.history import patient_history as history
from .views.summary import patient_summary
from .views.worklist import worklist
from .workflows import WorkflowResult, run

__version__ = "0.1.0"

# a library logs to its own logger and leaves handlers to the application
logging.getLogger("fhircare").addHandler(logging.NullHandler())

__all__ = [
    "ConfigurationError",
    "Conflict",
    "FhirClient",
    "FhirServerError",
    "FhircareError",
    "Forbidden",
    "Gone",
    "IllegalTransition",
    "NotFound",
    "PartialWrite",
    "PayloadError",
    "PreconditionFailed",
    "ScopeDenied",
    "ServerValidationError",
    "Settings",
    "TransientError",
    "Unauthorized",
    "UnknownWorkflow",
    "UnresolvedReference",
    "UnresolvedStoredReference",
    "WorkflowResult",
    "__version__",
    "authorizations",
    "caseload",
    "find_gaps",
    "history",
    "patient_summary",
    "run",
    "worklist",
]
