"""Translate a FHIR server's answer into fhircare's error tree (the one place this happens)."""

from __future__ import annotations

import json
from typing import Any

import requests

from ..errors import (
    Conflict,
    FhirServerError,
    Forbidden,
    Gone,
    Issue,
    NotFound,
    PreconditionFailed,
    ServerValidationError,
    TransientError,
    Unauthorized,
)

_BY_STATUS: dict[int, type[FhirServerError]] = {
    400: ServerValidationError,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    410: Gone,
    412: PreconditionFailed,
    422: ServerValidationError,
    429: TransientError,
    502: TransientError,
    503: TransientError,
    504: TransientError,
}


def issues_of(outcome: Any) -> list[Issue]:
    """The issues of an OperationOutcome dict; an empty list for anything else."""
    if not isinstance(outcome, dict) or outcome.get("resourceType") != "OperationOutcome":
        return []
    found = []
    for raw in outcome.get("issue") or []:
        if not isinstance(raw, dict):
            continue
        details = raw.get("details") if isinstance(raw.get("details"), dict) else {}
        text = raw.get("diagnostics") or (details or {}).get("text") or ""
        where = raw.get("expression") or raw.get("location") or []
        found.append(
            Issue(
                severity=str(raw.get("severity", "error")),
                code=str(raw.get("code", "unknown")),
                diagnostics=str(text),
                expression=tuple(str(x) for x in where if isinstance(x, str)),
            )
        )
    return found


def json_body(response: requests.Response) -> Any:
    """The decoded JSON body, or a FhirServerError naming what came back instead."""
    try:
        return response.json()
    except (ValueError, json.JSONDecodeError):
        kind = response.headers.get("Content-Type", "no content type")
        raise FhirServerError(
            f"{response.request.method} {_path(response)} answered {response.status_code} "
            f"with a body that is not JSON ({kind}, {len(response.content)} bytes)",
            http_status=response.status_code,
        ) from None


def error_for(response: requests.Response) -> FhirServerError:
    """The exception that stands for a non-2xx answer, with the server's OperationOutcome issues."""
    status = response.status_code
    cls = _BY_STATUS.get(status) or (TransientError if status >= 500 else FhirServerError)
    try:
        body = response.json()
    except ValueError:
        body = None
    issues = issues_of(body)
    summary = issues[0].diagnostics if issues and issues[0].diagnostics else (response.reason or "")
    message = f"{response.request.method} {_path(response)} failed with HTTP {status}"
    if summary:
        message += f" ({summary})"
    return cls(message, issues, http_status=status)


def _path(response: requests.Response) -> str:
    """Request path without the query string: queries may hold identifiers (PHI) and never reach logs."""
    url = response.request.url or ""
    return url.split("?", 1)[0]
