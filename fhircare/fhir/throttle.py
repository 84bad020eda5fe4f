"""Throttling waited out within a budget: a whole ``429``, and ``429`` entries inside a batch or
transaction answer (HTTP 200: Medplum's quota, measured on the full server).

A throttled request or entry was not processed, so sending it again is safe whatever its method.
A whole ``429`` is sent again by :class:`ThrottlingAdapter` (mounted on the client's session, outside
urllib3's own retries); a bundle's throttled entries are sent again, and only they, by
:meth:`Throttle.settle`. Each waits what the server names (``Retry-After``, ``RateLimit``, the entry's
OperationOutcome) while the wait fits in the budget (``FHIRCARE_THROTTLE_BUDGET`` seconds per
request); past it, :class:`~fhircare.errors.RateLimited` says how long to wait and what was written.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import requests
from requests.adapters import BaseAdapter

from ..errors import FhirServerError, Issue, PartialWrite, RateLimited, RateLimitedPartialWrite
from .outcome import issues_of
from .pacing import Clock, Pacer
from .ratelimit import MAX_NAMED_WAIT, entry_outcome, header_wait, is_throttled, outcome_wait, status_code
from .transaction import entry_reference, replace_references

#: seconds fhircare waits out throttling for one request, by default (FHIRCARE_THROTTLE_BUDGET)
DEFAULT_BUDGET = 60.0
#: the first wait when a server names none (doubled each time)
DEFAULT_WAIT = 1.0
#: rounds of re-sending at most, however short the waits
MAX_ROUNDS = 30

Send = Callable[[dict[str, Any]], dict[str, Any]]


class Throttle:
    """The throttle budget and the pacer of one client."""

    def __init__(self, budget: float = DEFAULT_BUDGET, pacer: Pacer | None = None) -> None:
        self.budget = max(0.0, budget)
        self.pacer = pacer or Pacer()

    @property
    def clock(self) -> Clock:
        return self.pacer.clock

    def fits(self, started: float, wait: float) -> bool:
        """Whether waiting ``wait`` more seconds stays inside the budget of a request begun at ``started``."""
        return self.clock() - started + wait <= self.budget

    def settle(
        self,
        kind: str,
        body: Mapping[str, Any],
        answer: dict[str, Any],
        send: Send,
        on_partial: Callable[[], None] = lambda: None,
    ) -> dict[str, Any]:
        """The answer with its throttled entries sent again (only they) until none is throttled, or
        :class:`~fhircare.errors.RateLimited` when the budget cannot hold the wait. ``on_partial`` is
        called when a transaction answer shows entries committed one by one (a non-atomic server).

        In a transaction answer with entries committed (a server that applies a transaction entry by
        entry) the throttled rest goes as a transaction of its own, its references to the committed
        entries made literal; an answer with a failure other than throttling is returned as it is
        (the caller reports it).
        """
        entries = list(body.get("entry") or [])
        results = list(answer.get("entry") or [])
        throttled = [i for i, result in enumerate(results) if is_throttled(result)]
        started, rounds = self.clock(), 0
        while throttled:
            committed = [i for i, r in enumerate(results) if 200 <= status_code(r) < 300]
            if kind == "transaction":
                if len(committed) + len(throttled) < len(results):
                    break  # a refusal besides the throttling: the caller reports it
                if committed:
                    on_partial()
            wait = self._entry_wait([results[i] for i in throttled], rounds)
            # a committed entry that points at a throttled one points at the id the server gave it
            # (Medplum assigns every create's id before it processes any): sent again, it gets another
            stranded = kind == "transaction" and _points_at(entries, committed, throttled)
            if stranded or rounds >= MAX_ROUNDS or not self.fits(started, wait):
                raise self._exhausted(kind, entries, results, throttled, committed, wait)
            self.pacer.hold(wait)
            again = [entries[i] for i in throttled]
            if kind == "transaction" and committed:
                again = replace_references(again, _committed_references(entries, results, committed))
            try:
                answered = send({"resourceType": "Bundle", "type": kind, "entry": again}).get("entry") or []
            except FhirServerError as exc:
                if kind != "transaction" or not _written(entries, results, committed):
                    raise
                raise _rest_failed(entries, results, throttled, committed, exc) from None
            for i, result in zip(throttled, answered, strict=True):
                results[i] = result
            throttled = [i for i in throttled if is_throttled(results[i])]
            rounds += 1
        return {**answer, "entry": results}

    def _entry_wait(self, throttled: list[dict[str, Any]], rounds: int) -> float:
        named = [w for r in throttled if (w := outcome_wait(entry_outcome(r))) is not None]
        if named:
            return max(named)
        held = self.pacer.held_for()  # the answer's RateLimit header said when the quota resets
        return held if held > 0 else DEFAULT_WAIT * 2**rounds

    def _exhausted(
        self,
        kind: str,
        entries: list[dict[str, Any]],
        results: list[dict[str, Any]],
        throttled: list[int],
        committed: list[int],
        wait: float,
    ) -> RateLimited:
        written = _written(entries, results, committed)
        issues = [
            Issue("error", "throttled", f"entry #{i} answered {status_code(results[i]) or 'nothing'}")
            for i in throttled
        ]
        message = (
            f"{kind}: {len(throttled)} of {len(results)} entries {rate_limited_text(wait)}; "
            + written_text(written)
        )
        if kind == "transaction" and written:
            return RateLimitedPartialWrite(
                message, issues, retry_after=wait, written=written, results=results
            )
        return RateLimited(message, issues, retry_after=wait, written=written)


def _written(entries: list[dict[str, Any]], results: list[dict[str, Any]], committed: list[int]) -> list[str]:
    """``Type/id`` of the committed entries that wrote (not the reads)."""
    writes = [
        i for i in committed if str((entries[i].get("request") or {}).get("method", "")).upper() != "GET"
    ]
    return [ref for i in writes if (ref := entry_reference(results[i]))]


def _rest_failed(
    entries: list[dict[str, Any]],
    results: list[dict[str, Any]],
    throttled: list[int],
    committed: list[int],
    error: FhirServerError,
) -> PartialWrite:
    """A transaction applied entry by entry, whose throttled rest could not be sent again: a partial
    write naming what the first answer committed (a workflow run undoes it), never "nothing was
    written". A rest answered as a whole (429 past the budget, 5xx, a refusal) was not applied: its
    entries carry that failure in ``results``. A rest with no answer may have been applied: no
    per-entry answer is claimed (``results`` empty), and the same request, run again, completes it."""
    written = _written(entries, results, committed)
    head = f"transaction: {len(written)} written ({', '.join(written)}) by the server entry by entry"
    if isinstance(error, RateLimited):
        wait = error.retry_after if error.retry_after is not None else DEFAULT_WAIT
        message = f"{head}; sending its throttled rest again was {rate_limited_text(wait)}"
        return RateLimitedPartialWrite(
            message, error.issues, retry_after=wait, written=written, results=results
        )
    if error.http_status is None:
        return PartialWrite(
            f"{head}; sending its throttled rest again got no answer, so it may be written too: run the "
            "same request (same request_id) again to complete it",
            error.issues,
            written=written,
        )
    code = error.http_status
    issue = {"severity": "error", "code": "transient" if code >= 500 else "processing"}
    outcome = {"resourceType": "OperationOutcome", "issue": [{**issue, "diagnostics": f"sent again: {code}"}]}
    failed = [
        {"response": {"status": str(code), "outcome": outcome}} if i in throttled else r
        for i, r in enumerate(results)
    ]
    message = f"{head}; sending its throttled rest again was answered {error.http_status}"
    return PartialWrite(message, error.issues, written=written, results=failed)


class ThrottlingAdapter(BaseAdapter):
    """Wraps a session's adapter: paces every request, learns from the answers' ``RateLimit``
    headers, and sends a request answered with a whole ``429`` again after the wait it names, within
    the throttle budget; past it, raises :class:`~fhircare.errors.RateLimited`."""

    def __init__(self, inner: BaseAdapter, throttle: Throttle) -> None:
        super().__init__()
        self.inner = inner
        self.throttle = throttle

    def send(  # type: ignore[override]
        self, request: requests.PreparedRequest, **kwargs: Any
    ) -> requests.Response:
        throttle = self.throttle
        started, rounds = throttle.clock(), 0
        while True:
            throttle.pacer.acquire(max_hold=throttle.budget)
            response = self.inner.send(request, **kwargs)
            throttle.pacer.observe(response.headers)
            if response.status_code != 429:
                return response
            body = _json(response)
            named = header_wait(response.headers)
            named = outcome_wait(body) if named is None else named
            wait = DEFAULT_WAIT * 2**rounds if named is None else named
            if rounds >= MAX_ROUNDS or not throttle.fits(started, wait):
                path = str(request.url or "").split("?", 1)[0]
                raise RateLimited(
                    f"{request.method} {path}: {rate_limited_text(wait)}; nothing was written",
                    issues_of(body),
                    retry_after=wait,
                )
            response.close()
            throttle.pacer.hold(wait)
            rounds += 1

    def close(self) -> None:
        self.inner.close()


def install(session: requests.Session, throttle: Throttle) -> None:
    """Wrap every adapter mounted on ``session`` in a :class:`ThrottlingAdapter`."""
    for prefix, adapter in list(session.adapters.items()):
        if not isinstance(adapter, ThrottlingAdapter):
            session.mount(prefix, ThrottlingAdapter(adapter, throttle))


def rate_limited_text(wait: float) -> str:
    seconds = math.ceil(wait) if math.isfinite(wait) else math.ceil(MAX_NAMED_WAIT)
    return f"rate limited by the server; retry after {max(1, seconds)} s"


def written_text(written: list[str]) -> str:
    if not written:
        return "nothing was written"
    return (
        f"{len(written)} written ({', '.join(written)}); the same request, run again after the wait, "
        "completes it"
    )


def _json(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _committed_references(
    entries: list[dict[str, Any]], results: list[dict[str, Any]], committed: list[int]
) -> dict[str, str]:
    """fullUrl -> ``Type/id`` of the entries already committed."""
    found = {}
    for i in committed:
        full_url, reference = entries[i].get("fullUrl"), entry_reference(results[i])
        if isinstance(full_url, str) and reference:
            found[full_url] = reference
    return found


def _points_at(entries: list[dict[str, Any]], committed: list[int], throttled: list[int]) -> bool:
    """Whether a committed entry's resource refers to the ``fullUrl`` of a throttled create (a POST,
    or a conditional PUT that may create): an update's target keeps its id, a create's would not."""
    targets = {entries[i].get("fullUrl") for i in throttled if _creates(entries[i])} - {None}
    return bool(targets) and any(_references(entries[i].get("resource")) & targets for i in committed)


def _creates(entry: dict[str, Any]) -> bool:
    request = entry.get("request") or {}
    method = str(request.get("method", "")).upper()
    return method == "POST" or (method == "PUT" and "?" in str(request.get("url", "")))


def _references(node: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        if isinstance(node.get("reference"), str):
            found.add(node["reference"])
        for child in node.values():
            found |= _references(child)
    elif isinstance(node, list):
        for child in node:
            found |= _references(child)
    return found
