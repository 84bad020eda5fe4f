"""Deleting what a capability probe wrote, throttling waited out, and saying what could not be.

A probe that meets a server's quota meets it again when it cleans up: the deletes wait out throttling
within a budget of their own (:data:`CLEAN_UP_BUDGET`, or the client's when longer), and what still
cannot be deleted is raised as :class:`ProbeLeftBehind`, naming each reference, so ``fhircare check``
can tell the user what it left on the server.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any, Protocol

from ..errors import FhirServerError, NotFound
from ..namespaces import DEFAULT_NAMESPACES
from .throttle import Throttle

log = logging.getLogger("fhircare.fhir")

# a marker that matches nothing; the probe is deleted right away, so no deployment setting is needed
PROBE_SYSTEM = DEFAULT_NAMESPACES.system("probe")
#: seconds a probe's clean-up waits out throttling at most (unless the client's budget is longer):
#: a quota of a minute's window (Medplum's) fits
CLEAN_UP_BUDGET = 120.0


class Cleaner(Protocol):
    """What a clean-up sends through (a :class:`~fhircare.fhir.client.FhirClient`)."""

    @property
    def throttle(self) -> Throttle: ...

    def delete(self, resource_type: str, resource_id: str) -> None: ...

    def search(self, resource_type: str, params: Any = None) -> Iterable[dict[str, Any]]: ...


class ProbeLeftBehind(FhirServerError):
    """A probe could not delete what it wrote: ``left`` names it (``Basic/id``); ``verdict`` is what
    the probe saw all the same (None when it could not tell); ``cause`` the error that ended the probe
    before its clean-up, if any."""

    def __init__(
        self, left: list[str], verdict: bool | None = None, cause: FhirServerError | None = None
    ) -> None:
        head = f"{cause.message}; " if cause is not None else ""
        super().__init__(
            f"{head}the probe could not delete what it wrote: {', '.join(left)} is left on the server "
            "(delete it when the server takes requests again)",
            cause.issues if cause is not None else (),
            http_status=cause.http_status if cause is not None else None,
        )
        self.left = left
        self.verdict = verdict
        self.cause = cause


def clean_up(
    client: Cleaner, written: list[str], marker: str | None = None
) -> tuple[list[str] | None, list[str]]:
    """Delete ``written`` (and, with ``marker``, the probe's Basics found by it), waiting out
    throttling up to :data:`CLEAN_UP_BUDGET`. Returns what the marker found (None when the search
    failed; ``[]`` without a marker) and what could not be deleted."""
    throttle = client.throttle
    kept_budget = throttle.budget
    throttle.budget = max(kept_budget, CLEAN_UP_BUDGET)
    try:
        found: list[str] | None = []
        if marker is not None:
            try:
                query = {"identifier": f"{PROBE_SYSTEM}|{marker}"}
                found = [f"Basic/{b['id']}" for b in client.search("Basic", query)]
            except FhirServerError:
                found = None
        left = []
        for reference in dict.fromkeys([*(found or []), *written]):
            rtype, _, rid = reference.partition("/")
            try:
                client.delete(rtype, rid)
            except NotFound:  # gone already (410 is a NotFound too)
                continue
            except FhirServerError as exc:
                log.warning(
                    "could not delete a capability probe",
                    extra={"resource_type": rtype, "http_status": exc.http_status},
                )
                left.append(reference)
        return found, left
    finally:
        throttle.budget = kept_budget
