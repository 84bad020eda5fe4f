"""The common run of every workflow: validate -> resolve -> map -> check -> write one transaction.

A workflow module subclasses :class:`Workflow` and adds only what its mapping cannot say: which
existing resources it must read (``reads``), how it changes them (``updates``), and any rule
that spans fields (``check``).
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlencode

from ..errors import (
    ConfigurationError,
    Conflict,
    FhirServerError,
    Issue,
    PayloadError,
    PreconditionFailed,
    TransientError,
    UnresolvedReference,
)
from ..fhir import FhirClient
from ..fhir.client import etag_version, weak_etag
from ..fhir.transaction import (
    as_plain_creates,
    conditional_entry_count,
    is_size_refusal,
    literal_as_conditional,
    transaction_bundle,
    written_references,
)
from ..mapping import BuildContext, MappingSet, PlannedEntry, build_entries
from ..mapping.engine import REQUEST_ID_SYSTEM, mark_request, request_identifier
from ..mapping.transforms import iso
from ..mapping.validate import json_path, payload_references, profile_issues, validate_payload
from .repeats import REVISION, follow_on_id, unchanged_since

log = logging.getLogger("fhircare.workflows")

WORKFLOW_SYSTEM = "urn:fhircare:workflow"
DATA_OPERATION = "http://terminology.hl7.org/CodeSystem/v3-DataOperation"
PROVENANCE_ENTRY = "provenance"
MAX_MERGE_ATTEMPTS = 10  # each lost race re-reads and rebuilds; ten covers a busy team
MAX_SAME_CONTENT = 50  # the same content without a request id, applied again and again (a task resumed)

#: Decides whether the caller may touch what a run names; raises a FhircareError to refuse. Called per
#: attempt once the reads and conditional references are resolved (with no entries yet, so no later
#: refusal can tell what was read), then with every planned transaction entry (what it creates or
#: changes, the references it carries), before anything is written. Arguments: the resources read
#: (``Type/id`` -> resource) and the entries. The sidecar keeps a patient session inside its patient.
AccessGuard = Callable[[Mapping[str, dict[str, Any]], Sequence[PlannedEntry]], None]


@dataclass(frozen=True)
class WorkflowResult:
    """What a run wrote: the references the server assigned, Provenance included."""

    workflow: str
    request_id: str
    written: list[str]
    created: list[str]
    updated: list[str]
    repeated: bool
    requests: int
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "workflow": self.workflow,
            "request_id": self.request_id,
            "written": self.written,
            "created": self.created,
            "updated": self.updated,
            "repeated": self.repeated,
            "requests": self.requests,
            **({"details": self.details} if self.details else {}),
        }


@dataclass
class RunState:
    """What one attempt knows: the payload (references resolved) and the resources read for it."""

    payload: dict[str, Any]
    request_id: str
    now: datetime
    found: dict[str, dict[str, Any]] = field(default_factory=dict)
    patient: str | None = None  # set by a workflow that learns the patient from what it read
    plain: bool = False  # the transaction was sent as plain creates after looking the request id up
    dry_run: bool = False  # plan and show the transaction, write nothing

    def resource(self, reference: str) -> dict[str, Any]:
        try:
            return self.found[reference]
        except KeyError:
            raise UnresolvedReference(f"{reference} was not found on the server") from None


class Workflow:
    """Base of the workflow modules."""

    name: ClassVar[str]
    description: ClassVar[str]
    #: re-read and rebuild when an If-Match update loses a race (merges like "add an activity")
    merge_on_conflict: ClassVar[bool] = False
    #: resource types the ``updates`` hook may change (the sidecar checks scopes for them)
    updates_types: ClassVar[tuple[str, ...]] = ()
    #: payload fields naming existing resources this workflow reads (and updates), when present
    reads_fields: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        client: FhirClient,
        mappings: MappingSet,
        profiles_dir: Path,
        verify_references: str = "auto",
        access: AccessGuard | None = None,
    ) -> None:
        self.client = client
        self.mappings = mappings
        self.profiles_dir = profiles_dir
        #: how literal references in a payload are checked to exist: "transaction" (sent as conditional
        #: references ``Type?_id=``, which the server resolves inside the transaction: no extra
        #: request), "batch" (searched in the read batch before writing), "off", or "auto" (the
        #: default: "transaction" where the server was seen to resolve conditional references, else
        #: "batch"; learned once per server by a probe that writes nothing there)
        if verify_references not in VERIFY_MODES:
            raise ConfigurationError(f"verify_references must be one of {', '.join(VERIFY_MODES)}")
        self.verify_references = verify_references
        self.access = access

    def created_types(self) -> set[str]:
        """Resource types a run may create: the mapping's entries and the Provenance."""
        mapping = self.mappings.mapping(self.name)
        return {str(e["resource"]["resourceType"]) for e in mapping["entries"]} | {"Provenance"}

    def written_types(self) -> set[str]:
        """Every resource type a run may write: created ones and updated ones."""
        return self.created_types() | set(self.updates_types)

    # ---- hooks -------------------------------------------------------------------------

    def check(self, payload: dict[str, Any]) -> list[Issue]:
        """Rules across fields that a JSON Schema cannot say. Issues name JSON paths."""
        return []

    def reads(self, payload: dict[str, Any]) -> list[str]:
        """Existing resources this run changes: ``Type/id`` reads or ``Type?...`` searches."""
        return [str(payload[name]) for name in self.reads_fields if payload.get(name)]

    def updates(self, state: RunState, created: dict[str, PlannedEntry]) -> list[PlannedEntry]:
        """Changed copies of resources in ``state.found``, as If-Match PUT entries."""
        return []

    def entries(self, state: RunState, ctx: BuildContext) -> list[PlannedEntry]:
        """Resources to create; by default what the mapping says."""
        return build_entries(self.mappings.mapping(self.name), ctx)

    # ---- the run -----------------------------------------------------------------------

    def run(
        self, payload: Mapping[str, Any], now: datetime | None = None, dry_run: bool = False
    ) -> WorkflowResult:
        """Validate, read what the run needs, plan and write one transaction.

        With ``dry_run`` nothing is written: the result's ``details["bundle"]`` is the transaction Bundle
        that would be sent (after the reads it needs, which are made)."""
        started_requests = self.client.request_count
        started = time.perf_counter()
        body = copy.deepcopy(dict(payload))
        validate_payload(self.profiles_dir, self.name, body)
        issues = self.check(body)
        if issues:
            raise PayloadError(f"the {self.name} payload is invalid", issues)
        explicit = bool(body.get("request_id"))
        request_id = str(body.get("request_id") or content_request_id(self.name, body))
        moment = now or datetime.now(UTC)
        if dry_run:
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
            state = RunState(copy.deepcopy(body), request_id, moment)
            try:
                result = self._attempt(state)
            except TransientError:
                # plain creates are not retried by the HTTP layer: the answer may have been lost after
                # the server committed, and this request id's Provenance says whether it did
                earlier = self.committed_earlier(request_id) if state.plain else None
                if earlier is None:
                    raise
                return self._result(request_id, earlier, [], [], False, started_requests)
            except PreconditionFailed:
                earlier = self.committed_earlier(request_id)
                if earlier is not None:
                    return self._result(request_id, earlier, [], [], True, started_requests)
                if not self.merge_on_conflict or attempt == MAX_MERGE_ATTEMPTS:
                    raise Conflict(
                        f"{self.name}: a resource changed on the server while this request ran; "
                        "nothing was written, read it again and retry"
                    ) from None
                log.info("merge conflict, retrying", extra={"workflow": self.name, "attempt": attempt})
                time.sleep(random.uniform(0, 0.05 * attempt))  # noqa: S311 - jitter, not security
                continue
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
        refs = payload_references(self.profiles_dir, self.name, state.payload)
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
                return self._result(state.request_id, previous, [], [], True, started_requests)
        planned = early or self.plan(state)
        if self.access is not None:
            self.access(state.found, planned)
        entries = [e.bundle_entry() for e in planned]
        if mode == "transaction" and literal:
            entries = literal_as_conditional(entries, {value for _, value in literal})
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
                    return self._result(state.request_id, earlier, [], [], True, started_requests)
                looked_up, state.plain = True, True
                sent = as_plain_creates(entries, existing)
            try:
                answer = self.client.transaction(transaction_bundle(sent), names=[e.name for e in planned])
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
        if mode == "batch":  # only batch mode consults what the client has seen
            self.client.known_references.add(written)
        repeated = not created and not updated and not state.plain
        return self._result(state.request_id, written, created, updated, repeated, started_requests)

    def _check_mode(self) -> str:
        """How references are checked on this server: the setting, or (``auto``) what the server does."""
        if self.verify_references == "transaction" and not self.client.resolves_conditional_references():
            raise ConfigurationError(
                "FHIRCARE_VERIFY_REFERENCES=transaction: this server stores conditional references without "
                "resolving them, so nothing was sent; use 'auto' or 'batch'"
            )
        if self.verify_references != "auto":
            return self.verify_references
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
        keyed = [e for e in planned if e.if_none_exist and not _is_request_criteria(e.if_none_exist)]
        searches = [f"{e.resource['resourceType']}?{e.if_none_exist}" for e in keyed]
        if not skip_provenance:
            searches.append(provenance_search(state.request_id))
        if not searches:
            return None, {}
        answer = self.client.batch(
            {
                "resourceType": "Bundle",
                "type": "batch",
                "entry": [{"request": {"method": "GET", "url": u}} for u in searches],
            }
        )
        results = answer.get("entry") or []
        if not skip_provenance:
            provenances = _matches(results[-1]) if results else []
            if provenances:
                return _provenance_written(provenances[0]), {}
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

    def plan(self, state: RunState, new_uuid: Callable[[], str] | None = None) -> list[PlannedEntry]:
        """Every transaction entry of this run, checked against FHIR structure and local profiles.

        No HTTP: ``state.found`` must already hold the resources ``reads`` named.
        """
        ctx = BuildContext(state.payload, self.mappings.codes, state.request_id, state.now)
        if new_uuid is not None:
            ctx.new_uuid = new_uuid
        created_entries = self.entries(state, ctx)
        by_name = {e.name: e for e in created_entries}
        update_entries = self.updates(state, by_name)
        provenance = self._provenance(state, created_entries, update_entries, ctx.new_uuid)
        planned = [*created_entries, *update_entries, provenance]
        self._check_resources(planned)
        return planned

    def _result(
        self,
        request_id: str,
        written: list[str],
        created: list[str],
        updated: list[str],
        repeated: bool,
        started_requests: int,
    ) -> WorkflowResult:
        return WorkflowResult(
            self.name,
            request_id,
            written,
            created,
            updated,
            repeated,
            self.client.request_count - started_requests,
        )

    # ---- reading what the run needs --------------------------------------------------

    def _read_batch(
        self,
        state: RunState,
        conditional: list[tuple[tuple[Any, ...], str]],
        reads: list[str],
        literal: list[tuple[tuple[Any, ...], str]] | None = None,
    ) -> list[str] | None:
        """One batch: conditional references, resources to update, literal references to check
        exist, and this request id's Provenance.

        Returns the earlier run's written references when this request id already committed.
        """
        entries = []
        for _, value in conditional:
            rtype, _, query = value.partition("?")
            pairs = [*parse_qsl(query, keep_blank_values=True), ("_count", "2"), ("_elements", "id")]
            entries.append({"request": {"method": "GET", "url": f"{rtype}?{urlencode(pairs, safe='|:/')}"}})
        entries += [{"request": {"method": "GET", "url": r}} for r in reads]
        literal = literal or []
        checks = sorted({value for _, value in literal})
        entries += [_existence_check(reference) for reference in checks]
        if reads:
            entries.append({"request": {"method": "GET", "url": provenance_search(state.request_id)}})
        answer = self.client.batch({"resourceType": "Bundle", "type": "batch", "entry": entries})
        results = answer.get("entry") or []
        for (parts, value), result in zip(conditional, results, strict=False):
            _set_path(state.payload, parts, _single_match(value, result, parts))
        for reference, result in zip(reads, results[len(conditional) :], strict=False):
            self._collect(state, reference, result)
        self._complete_includes(state, reads)
        if checks:
            start = len(conditional) + len(reads)
            missing = _missing(checks, results[start : start + len(checks)])
            self.client.known_references.add([*(ref for ref in checks if ref not in missing), *state.found])
            _refuse_missing(literal, missing)
        if reads:
            provenances = _matches(results[-1])
            if provenances:
                return _provenance_written(provenances[0])
        return None

    def _complete_includes(self, state: RunState, reads: list[str]) -> None:
        """Read what a read's ``_include`` should have brought but did not (a server that ignores
        ``_include``): one more batch, only on such servers."""
        wanted: set[str] = set()
        for read in reads:
            rtype, _, query = read.partition("?")
            for name, value in parse_qsl(query):
                if name != "_include" or not value.startswith(rtype + ":"):
                    continue
                element = value.split(":")[1]
                for key, resource in list(state.found.items()):
                    if key.startswith(rtype + "/"):
                        target = (
                            (resource.get(element) or {}) if isinstance(resource.get(element), dict) else {}
                        )
                        ref = target.get("reference")
                        if isinstance(ref, str) and ref.count("/") == 1 and ref not in state.found:
                            wanted.add(ref)
        if not wanted:
            return
        ordered = sorted(wanted)
        answer = self.client.batch(
            {
                "resourceType": "Bundle",
                "type": "batch",
                "entry": [{"request": {"method": "GET", "url": r}} for r in ordered],
            }
        )
        for reference, result in zip(ordered, answer.get("entry") or [], strict=False):
            self._collect(state, reference, result)

    def _collect(self, state: RunState, reference: str, result: dict[str, Any]) -> None:
        status = str((result.get("response") or {}).get("status", ""))
        resource = result.get("resource")
        if not status.startswith("2") or not isinstance(resource, dict):
            raise UnresolvedReference(
                f"{reference.split('?')[0]} could not be read ({status or 'no answer'})"
            )
        if resource.get("resourceType") == "Bundle":
            for entry in resource.get("entry") or []:
                found = entry.get("resource") or {}
                if found.get("resourceType") not in (None, "OperationOutcome"):
                    state.found[f"{found['resourceType']}/{found['id']}"] = found
            if "?" in reference and not any(
                key.startswith(reference.split("?")[0] + "/") for key in state.found
            ):
                raise UnresolvedReference(f"no {reference.split('?')[0]} matches the request")
        else:
            state.found[f"{resource['resourceType']}/{resource['id']}"] = resource

    def _explain_refusal(self, literal: list[tuple[tuple[Any, ...], str]], refusal: FhirServerError) -> None:
        """The server refused a transaction that carried conditional references: if some name
        nothing, say which payload fields (one batch, only on this failure path)."""
        checks = sorted({value for _, value in literal})
        answer = self.client.batch(
            {"resourceType": "Bundle", "type": "batch", "entry": [_existence_check(r) for r in checks]}
        )
        _refuse_missing(literal, _missing(checks, answer.get("entry") or []))
        log.info(
            "transaction refused although every reference exists",
            extra={"workflow": self.name, "status": refusal.http_status},
        )

    def committed_earlier(self, request_id: str) -> list[str] | None:
        """The references an earlier run with this request id wrote, from its Provenance (one search)."""
        rtype, _, query = provenance_search(request_id).partition("?")
        found = self.client.search(rtype, parse_qsl(query)).first()
        return None if found is None else _provenance_written(found)

    # ---- what is written ----------------------------------------------------------------

    def actor(self, payload: dict[str, Any]) -> str | None:
        field_name = self.mappings.mapping(self.name).get("actor")
        value = payload.get(field_name) if field_name else None
        return str(value) if value else None

    def patient(self, payload: dict[str, Any]) -> str | None:
        field_name = self.mappings.mapping(self.name).get("patient", "patient")
        value = payload.get(field_name)
        return str(value) if isinstance(value, str) else None

    def _provenance(
        self,
        state: RunState,
        created: list[PlannedEntry],
        updated: list[PlannedEntry],
        new_uuid: Callable[[], str],
    ) -> PlannedEntry:
        operation = "CREATE" if created else "UPDATE"
        actor = self.actor(state.payload)
        resource: dict[str, Any] = {
            "resourceType": "Provenance",
            "target": [{"reference": e.full_url} for e in created] + [{"reference": e.url} for e in updated],
            "recorded": iso(state.now),
            "activity": {
                "coding": [
                    {"system": DATA_OPERATION, "code": operation},
                    {"system": WORKFLOW_SYSTEM, "code": self.name, "display": self.description},
                ],
                "text": self.name,
            },
            "agent": [
                {
                    "type": {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
                                "code": "author",
                            }
                        ]
                    },
                    "who": {"reference": actor} if actor else {"display": "fhircare"},
                }
            ],
        }
        # US Core 7.0.0 provenance-1: a Practitioner agent acts on behalf of an organization
        if actor and state.payload.get("on_behalf_of"):
            resource["agent"][0]["onBehalfOf"] = {"reference": str(state.payload["on_behalf_of"])}
        patient_entry = next((e.full_url for e in created if e.resource["resourceType"] == "Patient"), None)
        patient = state.patient or self.patient(state.payload) or patient_entry
        entities = [{"role": "source", "what": {"reference": patient}}] if patient else []
        # the version each update started from: what tells a repeat from a new action (see repeats.py)
        for entry in updated:
            version = etag_version(entry.if_match)
            if version:
                entities.append({"role": REVISION, "what": {"reference": f"{entry.url}/_history/{version}"}})
        if entities:
            resource["entity"] = entities
        criteria = mark_request(resource, state.request_id, PROVENANCE_ENTRY)
        return PlannedEntry(
            name=PROVENANCE_ENTRY,
            resource=resource,
            full_url=f"urn:uuid:{new_uuid()}",
            url="Provenance",
            if_none_exist=criteria,
        )

    def _check_resources(self, planned: list[PlannedEntry]) -> None:
        issues: list[Issue] = []
        for entry in planned:
            label = f"{entry.resource['resourceType']}({entry.name})"
            issues += profile_issues(self.profiles_dir, entry.profile, entry.resource, label)
        if issues:
            raise PayloadError(f"the {self.name} output breaks a FHIR profile; nothing was sent", issues)


def content_request_id(workflow: str, payload: Mapping[str, Any]) -> str:
    """The request id of a payload that carries none: a digest of its content.

    Re-running the same command after a lost answer then finds what the first run wrote instead
    of writing it twice. To do the very same thing twice on purpose, give distinct request ids.
    """
    canonical = json.dumps({"workflow": workflow, "payload": payload}, sort_keys=True, separators=(",", ":"))
    return "auto-" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]


def update_entry(resource: dict[str, Any], name: str, profile: str | None = None) -> PlannedEntry:
    """An If-Match PUT of a changed copy of a resource read in this run."""
    version = (resource.get("meta") or {}).get("versionId")
    if not version:
        raise FhirServerError(f"{resource['resourceType']}/{resource['id']} came back without meta.versionId")
    body = {k: v for k, v in resource.items() if k != "meta"}
    reference = f"{resource['resourceType']}/{resource['id']}"
    return PlannedEntry(
        name=name,
        resource=body,
        full_url=reference,
        method="PUT",
        url=reference,
        if_match=weak_etag(version),
        profile=profile,
    )


VERIFY_MODES = ("auto", "transaction", "batch", "off")


def provenance_search(request_id: str) -> str:
    """The search that finds the Provenance a run with this request id wrote."""
    ident = request_identifier(request_id, PROVENANCE_ENTRY)
    return "Provenance?" + urlencode({"_tag": f"{ident['system']}|{ident['value']}"}, safe="|:/")


def _provenance_written(provenance: dict[str, Any]) -> list[str]:
    """What an earlier run wrote, from its Provenance: every target, then the Provenance itself."""
    targets = [t["reference"] for t in provenance.get("target", []) if t.get("reference")]
    return [*targets, f"Provenance/{provenance['id']}"]


def _is_request_criteria(criteria: str) -> bool:
    """True for the ``ifNoneExist`` on a request id (not on a business key such as an MRN)."""
    return REQUEST_ID_SYSTEM in criteria.split("&")[0]


def _existence_check(reference: str) -> dict[str, Any]:
    """A batch entry that reads ``Type/id``: a read is the cheapest lookup on every server (a search on
    ``_id`` scans on some: Medplum's in-memory repository), and answers 404/410 when it does not exist."""
    return {"request": {"method": "GET", "url": reference}}


def _missing(checks: list[str], results: list[dict[str, Any]]) -> set[str]:
    """The references whose read (answered in ``results``, same order) found nothing: any answer but a
    2xx with the resource itself counts as missing, so nothing is written on a doubtful check."""
    missing = set()
    for reference, result in zip(checks, results, strict=False):
        status = str((result.get("response") or {}).get("status", ""))
        resource = result.get("resource") or {}
        found = f"{resource.get('resourceType')}/{resource.get('id')}"
        if not status.startswith("2") or found != reference:
            missing.add(reference)
    return missing


def _refuse_missing(literal: list[tuple[tuple[Any, ...], str]], missing: set[str]) -> None:
    if not missing:
        return
    issues = [
        Issue("error", "not-found", f"{value} does not exist on the server", (json_path(parts),))
        for parts, value in literal
        if value in missing
    ]
    raise UnresolvedReference(
        f"{len(missing)} reference(s) name nothing on the server; nothing was written", issues
    )


def _read_targets(reads: list[str]) -> set[str]:
    """``Type/id`` of what the run reads anyway (a plain read, or a search on ``_id``)."""
    targets = set()
    for read in reads:
        rtype, _, query = read.partition("?")
        if not query:
            targets.add(read)
            continue
        for name, value in parse_qsl(query):
            if name == "_id" and "," not in value:
                targets.add(f"{rtype}/{value}")
    return targets


def _matches(result: dict[str, Any]) -> list[dict[str, Any]]:
    bundle = result.get("resource") or {}
    return [
        e["resource"]
        for e in bundle.get("entry") or []
        if isinstance(e.get("resource"), dict)
        and e["resource"].get("resourceType") != "OperationOutcome"
        and (e.get("search") or {}).get("mode", "match") == "match"
    ]


def _single_match(value: str, result: dict[str, Any], parts: tuple[Any, ...]) -> str:
    status = str((result.get("response") or {}).get("status", ""))
    where = json_path(parts)
    if not status.startswith("2"):
        raise UnresolvedReference(
            f"{where}: the server could not search {value.split('?')[0]} ({status})",
            [Issue("error", "not-found", f"search failed with {status}", (where,))],
        )
    found = _matches(result)
    if len(found) != 1:
        rule = "matches no resource" if not found else "matches more than one resource"
        raise UnresolvedReference(
            f"{where}: the conditional reference {rule}", [Issue("error", "not-found", rule, (where,))]
        )
    return f"{found[0]['resourceType']}/{found[0]['id']}"


def _set_path(payload: dict[str, Any], parts: tuple[Any, ...], value: str) -> None:
    node: Any = payload
    for part in parts[:-1]:
        node = node[part]
    node[parts[-1]] = value
