"""What a server says about its rate limit: the wait it names and the quota it has left.

Servers name the wait in different places, all read here:

- ``Retry-After`` (seconds or an HTTP date), on a whole ``429``;
- ``RateLimit`` as the IETF draft has it, structured (``"fhirInteractions";r=0;t=35``: Medplum) or in
  its earlier form (``limit=100, remaining=0, reset=35``), and the separate ``RateLimit-Remaining`` /
  ``RateLimit-Reset`` (and ``X-RateLimit-*``) headers;
- the ``OperationOutcome`` of a throttled batch entry (code ``throttled``): Medplum writes its limiter's
  state as JSON in the diagnostics (``{"_msBeforeNext": 35000, ...}``); others write a sentence
  ("retry after 30 s").
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import Any

#: a reset above this is a Unix time, not a number of seconds (GitHub's X-RateLimit-Reset)
EPOCH_FROM = 1_000_000_000
#: the longest wait a server can name (a day): more is taken as this, so a wait is always a number
#: that can be slept, compared with the budget and told in whole seconds
MAX_NAMED_WAIT = 86_400.0
_NUMBER = r"(\d+(?:\.\d+)?)"
_SENTENCE = re.compile(
    r"(?:retry|try again|wait)\D{0,24}" + _NUMBER + r"\s*(ms|millisecond|s\b|sec|second|min|minute)?",
    re.IGNORECASE,
)
_UNIT = {"ms": 0.001, "millisecond": 0.001, "min": 60.0, "minute": 60.0}


def status_code(entry: Mapping[str, Any]) -> int:
    """The HTTP status of a batch or transaction answer entry (``"429 Too Many Requests"`` -> 429;
    0 when it has none)."""
    text = str((entry.get("response") or {}).get("status", "")).strip()[:3]
    return int(text) if text.isdigit() else 0


def entry_outcome(entry: Mapping[str, Any]) -> dict[str, Any] | None:
    """The OperationOutcome of an answer entry (``response.outcome``, or the entry's resource)."""
    for candidate in ((entry.get("response") or {}).get("outcome"), entry.get("resource")):
        if isinstance(candidate, dict) and candidate.get("resourceType") == "OperationOutcome":
            return candidate
    return None


def is_throttled(entry: Mapping[str, Any]) -> bool:
    """An answer entry the server did not process because of its rate limit (a ``429``, or an
    outcome coded ``throttled`` on a non-2xx entry)."""
    code = status_code(entry)
    if code == 429:
        return True
    if 200 <= code < 300:
        return False
    outcome = entry_outcome(entry) or {}
    return any(isinstance(i, dict) and i.get("code") == "throttled" for i in outcome.get("issue") or [])


def outcome_wait(outcome: Mapping[str, Any] | None) -> float | None:
    """Seconds to wait, as an OperationOutcome's diagnostics name them, or None."""
    for issue in (outcome or {}).get("issue") or []:
        if not isinstance(issue, dict):
            continue
        details = issue.get("details") if isinstance(issue.get("details"), dict) else {}
        for text in (issue.get("diagnostics"), (details or {}).get("text")):
            wait = _text_wait(text) if isinstance(text, str) else None
            if wait is not None:
                return wait
    return None


def _text_wait(text: str) -> float | None:
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            state = json.loads(stripped)
        except ValueError:
            state = None
        if isinstance(state, dict):
            for key, scale in (("msBeforeNext", 0.001), ("_msBeforeNext", 0.001), ("retryAfter", 1.0)):
                value = state.get(key)
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    wait = _wait(float(value) * scale)
                    if wait is not None:
                        return wait
    match = _SENTENCE.search(text)
    if match is None:
        return None
    unit = (match.group(2) or "s").lower()
    return _wait(float(match.group(1)) * _UNIT.get(unit, 1.0))


def _wait(seconds: float | None) -> float | None:
    """A wait a server named, as a number of seconds fhircare can use: None when it is no wait
    (infinite, not a number, negative), at most :data:`MAX_NAMED_WAIT`."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return None
    return min(seconds, MAX_NAMED_WAIT)


def header_wait(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds to wait before the next request, as the headers of a throttled answer name them:
    ``Retry-After`` first, else the reset of a spent ``RateLimit`` quota; None when they name none."""
    retry_after = _header(headers, "Retry-After")
    if retry_after:
        wait = _retry_after(retry_after, now)
        if wait is not None:
            return wait
    remaining, reset = quota_state(headers, now)
    if reset is not None and (remaining is None or remaining <= 0):
        return _wait(reset)
    return None


def quota_state(headers: Mapping[str, str], now: float | None = None) -> tuple[float | None, float | None]:
    """``(remaining, seconds to reset)`` of the server's quota from its ``RateLimit`` headers (either
    may be None when not given); the lowest remaining when several quotas are named."""
    structured = _header(headers, "RateLimit")
    if structured:
        found = _structured(structured)
        if found != (None, None):
            return found
    remaining = _number(_header(headers, "RateLimit-Remaining") or _header(headers, "X-RateLimit-Remaining"))
    reset = _number(_header(headers, "RateLimit-Reset") or _header(headers, "X-RateLimit-Reset"))
    if reset is not None and reset > EPOCH_FROM:
        reset = max(0.0, reset - (time.time() if now is None else now))
    return remaining, _wait(reset)


def _structured(value: str) -> tuple[float | None, float | None]:
    """``"name";r=0;t=35`` items (several, comma-separated) or ``limit=.., remaining=.., reset=..``."""
    best: tuple[float | None, float | None] = (None, None)
    if "remaining=" in value or "reset=" in value:  # the earlier draft: one dictionary
        fields = dict(_pair(part) for part in value.split(","))
        return _number(fields.get("remaining")), _wait(_number(fields.get("reset")))
    for item in value.split(","):
        fields = dict(_pair(part) for part in item.split(";")[1:])
        remaining, reset = _number(fields.get("r")), _wait(_number(fields.get("t")))
        if remaining is None and reset is None:
            continue
        if best == (None, None) or (remaining is not None and (best[0] is None or remaining < best[0])):
            best = (remaining, reset)
    return best


def _pair(part: str) -> tuple[str, str]:
    key, _, value = part.strip().partition("=")
    return key.strip().lower(), value.strip().strip('"')


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None and not hasattr(headers, "lower_items"):  # a plain dict: look case-insensitively
        value = next((v for k, v in headers.items() if k.lower() == name.lower()), None)
    return value


def _number(value: str | None) -> float | None:
    """A header's number; None when it is none (``nan``, ``inf``, ``1e999`` included)."""
    try:
        number = None if value is None else float(value.strip())
    except ValueError:
        return None
    return number if number is not None and math.isfinite(number) else None


def _retry_after(value: str, now: float | None) -> float | None:
    seconds = _number(value)
    if seconds is not None:
        return _wait(max(0.0, seconds))  # a negative delay is no delay (RFC 9110 allows none)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return _wait(max(0.0, when.timestamp() - (time.time() if now is None else now)))
