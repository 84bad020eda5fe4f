"""Undoing what a server applied of a run's transaction when it applied it entry by entry and a later
entry failed (Medplum without ``transaction-bundles``): nothing may be left pointing at nothing.

The run's Provenance is deleted first: while it exists, a second submit of the same request finds it,
and is told the earlier attempt is not whole rather than "done" (:func:`.repeats.still_written`). Then
the run's updates are put back, each to the content it was read with (its pre-image), by a PUT with
``If-Match`` on the version the failed run wrote: a colleague's change made since is never
overwritten. Only when every update is back are the other resources the run created deleted, in
reverse order (a Task before the ServiceRequest it points at), so a resource is never deleted while
an update still points at it. When an update cannot be put back, the created resources stay (the
update points at them) and only the Provenance is withdrawn: the run did not happen as it says, and
the same request run again completes it.

Undoing waits out throttling like any write, within the throttle budget, and at least as long as the
server named for the entries it throttled (plus a second, up to two minutes): the run ends telling the
user to wait that long anyway, and a write left behind because its undo was throttled would be worse
than the wait.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from ..errors import (
    FhirServerError,
    Issue,
    PartialWrite,
    PreconditionFailed,
    RateLimited,
    UnresolvedStoredReference,
)
from ..fhir import FhirClient
from ..fhir.ratelimit import entry_outcome, is_throttled, outcome_wait
from ..fhir.throttle import DEFAULT_WAIT, rate_limited_text
from ..fhir.transaction import entry_diagnostics, entry_reference, entry_status
from ..fhir.versions import written_version
from ..mapping import PlannedEntry
from .state import PROVENANCE_ENTRY

log = logging.getLogger("fhircare.workflows")

#: seconds an undo waits out throttling at most, whatever wait the server named (unless the throttle
#: budget is longer): a quota of a minute's window (Medplum's) fits
UNDO_WAIT_CAP = 120.0


@dataclass
class Undone:
    """What undoing a partial write did: updates put back, creates deleted, and what stayed (why)."""

    restored: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    stayed: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.stayed


@dataclass(frozen=True)
class FailedEntry:
    """One entry the server did not apply: its name, status and what the server said."""

    name: str
    status: str
    diagnostics: str

    @property
    def code(self) -> int:
        return int(self.status[:3]) if self.status[:3].isdigit() else 0

    def issue(self) -> Issue:
        return Issue("error", "incomplete", f"entry '{self.name}' answered {self.status}: {self.diagnostics}")


def failed_entries(planned: Sequence[PlannedEntry], results: Sequence[dict[str, Any]]) -> list[FailedEntry]:
    return [
        FailedEntry(entry.name, entry_status(result) or "nothing", entry_diagnostics(result))
        for entry, result in zip(planned, results, strict=False)
        if not entry_status(result).startswith("2")
    ]


def undo_applied(
    client: FhirClient,
    planned: Sequence[PlannedEntry],
    results: Sequence[dict[str, Any]],
    found: dict[str, dict[str, Any]],
) -> Undone:
    """Put back the run's applied updates, then delete what it created (see the module doc)."""
    with _undo_budget(client, throttled_wait(results, client)):
        return _undo_applied(client, planned, results, found)


def throttled_wait(results: Sequence[dict[str, Any]], client: FhirClient | None = None) -> float | None:
    """The longest wait the server named for the throttled entries of ``results`` (or the hold the
    client's pacer keeps after a spent quota); None when no entry was throttled."""
    throttled = [r for r in results if is_throttled(r)]
    if not throttled:
        return None
    named = [w for r in throttled if (w := outcome_wait(entry_outcome(r))) is not None]
    held = client.throttle.pacer.held_for() if client is not None else 0.0
    return max([*named, held]) or None


@contextmanager
def _undo_budget(client: FhirClient, wait: float | None) -> Iterator[None]:
    """The client's throttle budget, raised while undoing to cover ``wait`` and a second more (up to
    :data:`UNDO_WAIT_CAP`)."""
    throttle = client.throttle
    kept = throttle.budget
    if wait is not None:
        throttle.budget = max(kept, min(wait + DEFAULT_WAIT, UNDO_WAIT_CAP))
    try:
        yield
    finally:
        throttle.budget = kept


def _undo_applied(
    client: FhirClient,
    planned: Sequence[PlannedEntry],
    results: Sequence[dict[str, Any]],
    found: dict[str, dict[str, Any]],
) -> Undone:
    undone = Undone()
    created: list[tuple[PlannedEntry, str]] = []
    updated: list[tuple[PlannedEntry, dict[str, Any]]] = []
    for entry, result in zip(planned, results, strict=False):
        status = entry_status(result)
        if not status.startswith("2") or entry.method == "GET":
            continue
        if entry.method == "PUT":
            updated.append((entry, result))
        elif status.startswith("201") and (reference := entry_reference(result)):
            created.append((entry, reference))  # a 200 on a conditional create found an earlier resource
    # the Provenance first, before anything else is touched: while it exists, a second submit of the
    # same request finds it (and checks the run whole: repeats.still_written, which this run is not)
    provenance = [pair for pair in created if pair[0].name == PROVENANCE_ENTRY]
    others = [pair for pair in created if pair[0].name != PROVENANCE_ENTRY]
    _delete(client, provenance, undone)
    kept = len(undone.stayed)
    for entry, result in updated:
        _restore(client, entry, result, found, undone)
    if len(undone.stayed) == kept:  # every update is back: nothing points at what the run created
        _delete(client, list(reversed(others)), undone)
    else:
        undone.stayed += [reference for _, reference in others]
    if undone.stayed:
        log.warning("a partial write could not be fully undone", extra={"stayed": len(undone.stayed)})
    return undone


def _delete(client: FhirClient, created: list[tuple[PlannedEntry, str]], undone: Undone) -> None:
    for _, reference in created:
        rtype, _, rid = reference.partition("/")
        try:
            client.delete(rtype, rid)
        except FhirServerError as exc:
            undone.stayed.append(reference)
            undone.reasons.append(f"{reference} could not be deleted ({exc.http_status or exc.message})")
            continue
        undone.deleted.append(reference)


def _restore(
    client: FhirClient,
    entry: PlannedEntry,
    result: dict[str, Any],
    found: dict[str, dict[str, Any]],
    undone: Undone,
) -> None:
    """PUT the resource back to what the run read, If-Match on the version the run wrote."""
    reference = entry.url
    before = found.get(reference)
    version = written_version(result)
    if before is None or not version:
        undone.stayed.append(reference)
        undone.reasons.append(f"{reference}: the server named no version to put it back on")
        return
    meta = {k: v for k, v in (before.get("meta") or {}).items() if k not in ("versionId", "lastUpdated")}
    body = {k: v for k, v in before.items() if k != "meta"}
    if meta:
        body = {"resourceType": body["resourceType"], "meta": meta, **body}
    try:
        client.update(body, if_match=version)
    except FhirServerError as exc:
        undone.stayed.append(reference)
        undone.reasons.append(
            f"{reference} could not be put back ({exc.http_status or exc.message}: changed again since?)"
        )
        return
    undone.restored.append(reference)


def undo_summary(undone: Undone) -> str:
    """What undoing did, for the error a coordinator reads."""
    parts = []
    if undone.restored:
        parts.append(
            f"{', '.join(undone.restored)} put back to {'its' if len(undone.restored) == 1 else 'their'} earlier content"
        )
    if undone.deleted:
        parts.append(f"{', '.join(undone.deleted)} deleted")
    done = "; ".join(parts) or "nothing had to be undone"
    if undone.complete:
        return f"what it had applied was undone ({done}): nothing stayed written"
    return (
        f"undoing it was not complete ({done}); stayed written: {', '.join(undone.stayed)} "
        f"({'; '.join(undone.reasons) or 'kept so that nothing points at a deleted resource'})"
    )


def error_after_undo(partial: PartialWrite, failed: list[FailedEntry], undone: Undone) -> FhirServerError:
    """The error a run ends with once what a non-atomic server applied was undone: it says what
    failed and why, what stayed written, and the next step that can work."""
    if isinstance(partial, UnresolvedStoredReference):  # every entry applied, some with a '?' stored
        partial.message = (
            "the server stored conditional references without resolving them (it was taken to resolve "
            f"them); {undo_summary(undone)}"
            + (
                ". Run the same request again: references are now checked before writing"
                if undone.complete
                else ""
            )
        )
        partial.written = list(undone.stayed)
        return partial
    issues = [f.issue() for f in failed]
    what = "; ".join(f"entry '{f.name}' answered {f.status}: {f.diagnostics}" for f in failed)
    head = f"the server applied the transaction entry by entry and {what}; {undo_summary(undone)}"
    codes = {f.code for f in failed}
    if not undone.complete:
        return PartialWrite(
            f"{head}. Run the same request (same request_id) again to complete it: its conditional "
            "creates find what stayed",
            issues,
            written=list(undone.stayed),
            results=partial.results,
        )
    if codes & {409, 412}:
        return PreconditionFailed(
            f"{head}. A resource changed on the server while this request ran: read it again and retry",
            issues,
            http_status=412,
        )
    if isinstance(partial, RateLimited) or codes == {429}:  # throttled: exit 75, the wait it named
        named = partial.retry_after if isinstance(partial, RateLimited) else None
        wait = named or throttled_wait(partial.results) or DEFAULT_WAIT
        return RateLimited(
            f"{rate_limited_text(wait)}: {head}. Run the same request again after the wait",
            issues,
            retry_after=wait,
            written=[],
        )
    if any(code >= 500 or code == 0 for code in codes):
        next_step = "The server failed: run the same request again later"
    else:
        next_step = (
            "The server refused what the failed entries hold: running it again as it is fails the same way"
        )
    return PartialWrite(f"{head}. {next_step}", issues, written=[], results=partial.results)


def withdraw_provenance(client: FhirClient, partial: PartialWrite) -> None:
    """Without the server's per-entry answer nothing can be undone: the run's Provenance at least is
    deleted, so the same request runs again (its conditional creates find what was written) instead
    of being taken for a repeat."""
    for reference in [r for r in partial.written if r.startswith("Provenance/")]:
        try:
            client.delete(*reference.split("/", 1))
        except FhirServerError:
            log.warning("could not withdraw the Provenance of a partial write")
            continue
        partial.written.remove(reference)
        partial.message += "; its Provenance was withdrawn"
