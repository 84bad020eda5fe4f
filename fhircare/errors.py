"""One error tree for the whole package.

Every error carries an HTTP status (used by the sidecar) and an exit code (used by the CLI),
so the faces translate errors without knowing where they came from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Issue:
    """One problem: an OperationOutcome issue, or a local validation failure.

    ``expression`` holds the location: a FHIRPath expression from a server, or the JSON path
    of a payload field for local validation.
    """

    severity: str
    code: str
    diagnostics: str = ""
    expression: tuple[str, ...] = ()

    def as_outcome_issue(self) -> dict[str, Any]:
        out: dict[str, Any] = {"severity": self.severity, "code": self.code}
        if self.diagnostics:
            out["diagnostics"] = self.diagnostics
        if self.expression:
            out["expression"] = list(self.expression)
        return out

    def __str__(self) -> str:
        where = f"{', '.join(self.expression)}: " if self.expression else ""
        return f"{where}{self.diagnostics or self.code}"


class FhircareError(Exception):
    """Base of every error fhircare raises on purpose."""

    status: int = 500
    exit_code: int = 1
    code: str = "exception"

    def __init__(self, message: str, issues: list[Issue] | tuple[Issue, ...] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.issues: tuple[Issue, ...] = tuple(issues)

    def __str__(self) -> str:
        if not self.issues:
            return self.message
        details = "; ".join(str(i) for i in self.issues)
        return f"{self.message}: {details}"

    def to_outcome(self) -> dict[str, Any]:
        """The error as a FHIR OperationOutcome (JSON), as the sidecar answers it."""
        issues = [i.as_outcome_issue() for i in self.issues] or [
            {"severity": "error", "code": self.code, "diagnostics": self.message}
        ]
        return {"resourceType": "OperationOutcome", "issue": issues}


# ---- local errors: raised before anything is sent --------------------------------------------


class ConfigurationError(FhircareError):
    """Settings, mapping files or rule files are missing or invalid."""

    status = 500
    exit_code = 3
    code = "invalid"


class PayloadError(FhircareError):
    """A workflow payload broke its input schema or a local FHIR profile. Nothing was written."""

    status = 422
    exit_code = 2
    code = "invalid"


class UnknownWorkflow(FhircareError):
    """No workflow of that name (built in, or in the FHIRCARE_MAPPINGS folder)."""

    status = 404
    exit_code = 2
    code = "not-found"


class UnresolvedReference(FhircareError):
    """A conditional or literal reference in a payload could not be resolved to exactly one resource."""

    status = 422
    exit_code = 2
    code = "not-found"


class IllegalTransition(FhircareError):
    """A Task status change that the FHIR Task state machine does not allow."""

    status = 409
    exit_code = 4
    code = "business-rule"


class ScopeDenied(FhircareError):
    """The caller's granted scopes do not cover what the request would write or read."""

    status = 403
    exit_code = 5
    code = "forbidden"


# ---- errors from a FHIR server ------------------------------------------------------------------


class FhirServerError(FhircareError):
    """The FHIR server answered with an error, or with something that is not FHIR."""

    status = 502
    exit_code = 6
    code = "exception"

    def __init__(
        self,
        message: str,
        issues: list[Issue] | tuple[Issue, ...] = (),
        http_status: int | None = None,
    ) -> None:
        super().__init__(message, issues)
        self.http_status = http_status


class ServerValidationError(FhirServerError):
    """The server refused the content (400 / 422)."""

    status = 422
    code = "invalid"


class Unauthorized(FhirServerError):
    """The server wants credentials, or refused the ones sent (401)."""

    status = 401
    exit_code = 5
    code = "login"


class Forbidden(FhirServerError):
    """The caller may not do this (403)."""

    status = 403
    exit_code = 5
    code = "forbidden"


class NotFound(FhirServerError):
    """The resource does not exist (404), or a search that had to find one found none."""

    status = 404
    exit_code = 4
    code = "not-found"


class Gone(NotFound):
    """The resource existed and was deleted (410)."""

    status = 410
    code = "deleted"


class Conflict(FhirServerError):
    """The server refused a write because of a concurrent change (409), or a race was lost."""

    status = 409
    exit_code = 4
    code = "conflict"


class PreconditionFailed(Conflict):
    """If-Match named a version that is no longer current (412), or conditional criteria matched many."""

    status = 412


class PartialWrite(FhirServerError):
    """A transaction was processed entry by entry and some entries failed.

    ``written`` is what stayed written: a workflow run undoes what the server applied (see
    :mod:`fhircare.workflows.undo`), so it is empty unless undoing could not complete, and the
    message says whether running the same request (same ``request_id``) again can help.
    """

    status = 502
    exit_code = 6
    code = "incomplete"

    def __init__(
        self,
        message: str,
        issues: list[Issue] | tuple[Issue, ...] = (),
        written: list[str] | None = None,
        results: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message, issues, http_status=200)
        self.written = list(written or [])
        #: the transaction-response's entries (same order as sent): what to undo, with the versions written
        self.results = list(results or [])


class UnresolvedStoredReference(PartialWrite):
    """The server stored a conditional reference (``Type?...``) verbatim instead of resolving it."""

    code = "processing"


class TransientError(FhirServerError):
    """The server or network failed in a way that may pass (timeouts, 429, 5xx) after retries ran out."""

    status = 503
    exit_code = 75
    code = "transient"


class RateLimited(TransientError):
    """The server throttled the request (a whole ``429``, or ``429`` entries inside a batch or
    transaction answer) for longer than fhircare's throttle budget. ``retry_after``: the seconds the
    server named; ``written``: what was committed before it (``Type/id``; empty when nothing was)."""

    code = "throttled"

    def __init__(
        self,
        message: str,
        issues: list[Issue] | tuple[Issue, ...] = (),
        retry_after: float | None = None,
        written: list[str] | None = None,
    ) -> None:
        super().__init__(message, issues, http_status=429)
        self.retry_after = retry_after
        self.written = list(written or [])


class RateLimitedPartialWrite(RateLimited, PartialWrite):
    """A transaction the server applied entry by entry was throttled after some entries committed:
    what was written stays (``written``; ``results``: the answer's entries, throttled ones included);
    the same request, run again after the wait, completes it."""

    def __init__(
        self,
        message: str,
        issues: list[Issue] | tuple[Issue, ...] = (),
        retry_after: float | None = None,
        written: list[str] | None = None,
        results: list[dict[str, Any]] | None = None,
    ) -> None:
        FhirServerError.__init__(self, message, issues, http_status=200)
        self.retry_after = retry_after
        self.written = list(written or [])
        self.results = list(results or [])


@dataclass
class ErrorReport:
    """What the CLI prints for an error, kept separate so it can be rendered as text or JSON."""

    error: str
    message: str
    issues: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def of(cls, exc: FhircareError) -> ErrorReport:
        return cls(type(exc).__name__, exc.message, [i.as_outcome_issue() for i in exc.issues])
