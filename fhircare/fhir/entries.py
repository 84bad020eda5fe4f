"""What a failed entry of a batch answer means. An entry's status is not one word: 404/410 say the
resource is missing, 401/403 that these credentials may not see it, 429 that the server throttled the
entry (nothing was looked at), 5xx that the server failed. Only the first is "missing"."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import (
    FhirServerError,
    Forbidden,
    Gone,
    NotFound,
    RateLimited,
    ServerValidationError,
    TransientError,
    Unauthorized,
)
from .outcome import issues_of
from .ratelimit import entry_outcome, is_throttled, outcome_wait, status_code
from .throttle import rate_limited_text

MISSING = "missing"
ACCESS = "access"
THROTTLED = "throttled"
SERVER = "server"
REFUSED = "refused"

_KINDS: dict[int, type[FhirServerError]] = {
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    410: Gone,
    400: ServerValidationError,
    422: ServerValidationError,
}


def failure_kind(result: Mapping[str, Any]) -> str | None:
    """None for a 2xx entry; else ``missing`` (404/410), ``access`` (401/403), ``throttled`` (429),
    ``server`` (5xx, or no status) or ``refused`` (any other 4xx)."""
    code = status_code(result)
    if 200 <= code < 300:
        return None
    if is_throttled(result):
        return THROTTLED
    if code in (404, 410):
        return MISSING
    if code in (401, 403):
        return ACCESS
    return REFUSED if 400 <= code < 500 else SERVER


def entry_error(what: str, result: Mapping[str, Any]) -> FhirServerError:
    """The error a failed entry stands for; ``what`` names the entry's purpose (no PHI)."""
    code = status_code(result)
    kind = failure_kind(result)
    outcome = entry_outcome(result)
    issues = issues_of(outcome)
    answered = f"answered {code}" if code else "was not answered"
    if kind == THROTTLED:
        wait = outcome_wait(outcome)
        text = "rate limited by the server" if wait is None else rate_limited_text(wait)
        return RateLimited(f"{what}: {text}; nothing was written", issues, retry_after=wait)
    if kind == ACCESS:
        return _KINDS[code](f"{what}: the server refused access ({code})", issues, http_status=code)
    if kind == SERVER:
        return TransientError(f"{what}: the server failed ({answered})", issues, http_status=code or None)
    cls = _KINDS.get(code, FhirServerError)
    return cls(f"{what}: the server {answered}", issues, http_status=code or None)
