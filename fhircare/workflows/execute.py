"""Executing a run: the reference-check mode for the server, the read batch, the plan, the one
transaction (conditional creates, or plain creates after a request-id lookup where the server limits
conditional transactions), merge retries after a lost race, and telling repeats from new actions."""

from __future__ import annotations

import copy
import logging
import random
import time
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from .. import clock
from ..errors import (
    ConfigurationError,
    Conflict,
    FhirServerError,
    PartialWrite,
    PayloadError,
    PreconditionFailed,
    TransientError,
)
from ..fhir.transaction import (
    as_plain_creates,
    conditional_entry_count,
    is_size_refusal,
    literal_as_conditional,
    transaction_bundle,
    written_references,
)
from ..mapping import PlannedEntry
from ..mapping.validate import payload_references, validate_payload
from .plan import content_request_id
from .reads import (
    Reader,
    _is_request_criteria,
    _matches,
    _provenance_written,
    _read_targets,
    provenance_search,
)
from .repeats import answered_as_before, follow_on_id, payload_fingerprint, still_written, unchanged_since
from .state import RunState, WorkflowResult
from .undo import error_after_undo, failed_entries, undo_applied, withdraw_provenance

log = logging.getLogger("fhircare.workflows")

MAX_MERGE_ATTEMPTS = 10  # each lost race re-reads and rebuilds; ten covers a busy team
MAX_SAME_CONTENT = 50  # the same content without a request id, applied again and again (a task resumed)


class Executor(Reader):
    """The write side of a run."""

    def run(
        self, payload: Mapping[str, Any], now: datetime | None = None, dry_run: bool = False
    ) -> WorkflowResult:
        """Validate, read what the run needs, plan and write one transaction.

        With ``dry_run`` nothing is written: the result's ``details["bundle"]`` is the transaction Bundle
        that would be sent (after the reads it needs, which are made)."""
        started_requests = self.client.request_count
        started = time.perf_counter()
        body = copy.deepcopy(dict(payload))
        validate_payload(self.profiles_dir, self.name, body, self.schema_file)
        moment = now or clock.now()
        issues = self.check(body, moment)
        if issues:
            raise PayloadError(f"the {self.name} payload is invalid", issues)
        explicit = bool(body.get("request_id"))
        request_id = str(body.get("request_id") or content_request_id(self.name, body))
        if dry_run:  # the bundle as sent, but for the payload fingerprint of its Provenance (repeats.py)
            state = RunState(copy.deepcopy(body), request_id, moment, dry_run=True)
            return self._attempt(state)
        for _ in range(MAX_SAME_CONTENT):
            result = self._run_once(body, request_id, moment, started, started_requests)
            if explicit or not result.repeated or unchanged_since(self.client, result.written):
                return replace(result, requests=self.client.request_count - started_requests)
            # the same content as an earlier action whose writes have moved on since: a new action
            request_id = follow_on_id(request_id, result.written[-1])
        raise Conflict(f"{self.name}: more than {MAX_SAME_CONTENT} identical actions; give a request_id")

    def _run_once(
        self, body: dict[str, Any], request_id: str, moment: datetime, started: float, started_requests: int
    ) -> WorkflowResult:
        for attempt in range(1, MAX_MERGE_ATTEMPTS + 1):
            state = RunState(
                copy.deepcopy(body), request_id, moment, fingerprint=payload_fingerprint(self.name, body)
            )
            try:
                result = self._attempt(state)
            except TransientError:
                # plain creates are not retried by the HTTP layer: the answer may have been lost after
                # the server committed, and this request id's Provenance says whether it did
                earlier = self.committed_earlier(request_id, state.fingerprint) if state.plain else None
                if earlier is None:
                    raise
                return self._result(request_id, earlier, [], [], False, started_requests)
            except PreconditionFailed:
                earlier = self.committed_earlier(request_id, state.fingerprint)
                if earlier is not None:
                    return self._result(
                        request_id, still_written(self.client, earlier), [], [], True, started_requests
                    )
                if not self.merges_on_conflict() or attempt == MAX_MERGE_ATTEMPTS:
                    raise Conflict(
                        f"{self.name}: a resource changed on the server while this request ran; "
                        "nothing was written, read it again and retry"
                    ) from None
                log.info("merge conflict, retrying", extra={"workflow": self.name, "attempt": attempt})
                time.sleep(random.uniform(0, 0.05 * attempt))  # noqa: S311 - jitter, not security
                continue
            if log.isEnabledFor(logging.INFO):
                log.info(
                    "workflow written",
                    extra={
                        "workflow": self.name,
                        "request_id": request_id,
                        "resource_types": sorted({r.split("/")[0] for r in result.written}),
                        "requests": result.requests,
                        "elapsed_ms": round((time.perf_counter() - started) * 1000, 1),
                    },
                )
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    def _attempt(self, state: RunState) -> WorkflowResult:
        started_requests = self.client.request_count
        mode = self._check_mode()
        refs = payload_references(self.profiles_dir, self.name, state.payload, self.schema_file)
        conditional = [(parts, value) for parts, value in refs if "?" in value]
        reads = self.reads(state.payload)
        read = _read_targets(reads)
        literal = [(parts, value) for parts, value in refs if "?" not in value and value not in read]
        before_write: list[tuple[tuple[Any, ...], str]] = []
        if mode == "batch":
            known = self.client.known_references
            before_write = [(parts, value) for parts, value in literal if value not in known]
        looked_up = bool(reads)  # the read batch looks this request id up whenever it reads
        # with nothing to read, map first: a payload the mapping refuses then costs no request at all
        early = self.plan(state) if not conditional and not reads else None
        if conditional or reads or before_write:
            previous = self._read_batch(state, conditional, reads, before_write)
            if self.access is not None:  # before plan(): its refusals must not tell what was read
                self.access(state.found, ())
            if previous is not None:
                return self._result(
                    state.request_id, still_written(self.client, previous), [], [], True, started_requests
                )
        planned = early or self.plan(state)
        if self.access is not None:
            self.access(state.found, planned)
        entries = [e.bundle_entry() for e in planned]
        if mode == "transaction" and literal:
            # what this client saw exist stays literal, as in batch mode; the rest the server resolves
            known = self.client.known_references
            unseen = {value for _, value in literal if value not in known}
            if unseen:
                entries = literal_as_conditional(entries, unseen)
        behaviour = self.client.behaviour
        plain = (
            conditional_entry_count(entries) > 0
            and behaviour.atomic_transactions is not False
            and not behaviour.conditional_fits(len(entries))
        )
        if state.dry_run:
            bundle = transaction_bundle(as_plain_creates(entries, {}) if plain else entries)
            result = self._result(state.request_id, [], [], [], False, started_requests)
            return replace(result, details={"dry_run": True, "bundle": bundle})
        while True:
            sent = entries
            if plain:
                earlier, existing = self._look_up(state, planned, skip_provenance=looked_up)
                if earlier is not None:
                    return self._result(
                        state.request_id, still_written(self.client, earlier), [], [], True, started_requests
                    )
                looked_up, state.plain = True, True
                sent = as_plain_creates(entries, existing)
            try:
                answer = self.client.transaction(transaction_bundle(sent), names=[e.name for e in planned])
            except PartialWrite as partial:
                raise self._undo(partial, planned, state, literal) from None
            except FhirServerError as exc:
                if not plain and conditional_entry_count(sent) and is_size_refusal(exc):
                    self._learn_size_refusal(len(sent))
                    plain = True
                    continue
                if mode != "transaction" or not literal or isinstance(exc, Conflict):
                    raise
                if not 400 <= (exc.http_status or 0) < 500:
                    raise
                self._explain_refusal(literal, exc)
                raise
            break
        written, created, updated = written_references([(e.name, e.method, e.url) for e in planned], answer)
        # what was written exists; so do the literal references, where this run checked them (the
        # unseen ones resolved in the transaction or were read in the batch, the rest were known)
        checked = mode in ("transaction", "batch")
        self.client.known_references.add([*written, *(value for _, value in literal if checked)])
        repeated = not created and not updated and not state.plain
        if written[-1] not in created and not state.plain:  # the Provenance's conditional create matched
            answered_as_before(self.client, answer, written, state.fingerprint, created)
        return self._result(state.request_id, written, created, updated, repeated, started_requests)

    def _undo(
        self,
        partial: PartialWrite,
        planned: list[PlannedEntry],
        state: RunState,
        literal: list[tuple[tuple[Any, ...], str]],
    ) -> FhirServerError:
        """The server applied the transaction entry by entry and an entry failed: undo what it applied
        (see :mod:`.undo`), then the error that names the cause and the next step. A refused entry
        where a payload reference names nothing is the payload's fault: UnresolvedReference, naming
        the field (the check runs only on this path)."""
        if len(partial.results) != len(planned):  # no per-entry answer: withdraw the Provenance only
            withdraw_provenance(self.client, partial)
            return partial
        failed = failed_entries(planned, partial.results)
        undone = undo_applied(self.client, planned, partial.results, state.found)
        error = error_after_undo(partial, failed, undone)
        refused = {f.code for f in failed} & {400, 404, 409, 410, 422}
        if undone.complete and literal and refused and not isinstance(error, PreconditionFailed):
            self._explain_refusal(literal, error)  # raises UnresolvedReference when one names nothing
        return error

    def _check_mode(self) -> str:
        """How references are checked on this server: the setting, or (``auto``) what the server does.
        Also: whether request-id searches must still name the earlier ``urn:fhircare:`` system there."""
        legacy = self.client.holds_legacy_stamps()
        if self.namespaces.legacy != legacy:
            self.namespaces = replace(self.namespaces, legacy=legacy)
        if self.verify_references == "transaction" and not self.client.resolves_conditional_references():
            raise ConfigurationError(
                "FHIRCARE_VERIFY_REFERENCES=transaction: this server stores conditional references without "
                "resolving them, so nothing was sent; use 'auto' or 'batch'"
            )
        if self.verify_references != "auto":
            return self.verify_references
        if self.client.behaviour.atomic_transactions is False:
            # entry by entry, a reference the server resolves fails its entry alone: check first
            return "batch"
        return "transaction" if self.client.resolves_conditional_references() else "batch"

    def _learn_size_refusal(self, size: int) -> None:
        known = self.client.behaviour.strict_refused_at
        self.client.learn(strict_refused_at=size if known is None else min(known, size))
        log.info("server limits conditional transactions; sending plain creates", extra={"entries": size})

    def _look_up(
        self, state: RunState, planned: list[PlannedEntry], skip_provenance: bool
    ) -> tuple[list[str] | None, dict[str, str]]:
        """Before plain creates: this request id's Provenance (an earlier run that committed) and the
        resources the entries' business keys (``match``) already name, in one batch."""
        keyed = [
            e
            for e in planned
            if e.if_none_exist and not _is_request_criteria(e.if_none_exist, self.namespaces)
        ]
        searches = [f"{e.resource['resourceType']}?{e.if_none_exist}" for e in keyed]
        if not skip_provenance:
            searches.append(provenance_search(state.request_id, self.namespaces))
        if not searches:
            return None, {}
        results = self.client.read_batch(searches)
        if not skip_provenance:
            provenances = _matches(results[-1]) if results else []
            if provenances:
                return _provenance_written(provenances[0], state.fingerprint), {}
        existing: dict[str, str] = {}
        for entry, result in zip(keyed, results, strict=False):
            found = _matches(result)
            if len(found) > 1:
                raise Conflict(
                    f"{entry.name}: its business key matches more than one {entry.resource['resourceType']}"
                )
            if found:
                existing[entry.full_url] = f"{found[0]['resourceType']}/{found[0]['id']}"
        return None, existing

    def _result(
        self,
        request_id: str,
        written: list[str],
        created: list[str],
        updated: list[str],
        repeated: bool,
        started_requests: int,
    ) -> WorkflowResult:
        spent = self.client.request_count - started_requests
        return WorkflowResult(self.name, request_id, written, created, updated, repeated, spent)
