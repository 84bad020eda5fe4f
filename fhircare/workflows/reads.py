"""Reading what a run needs in one batch: resources it updates, conditional references it resolves,
literal references it checks exist, and its request id's Provenance."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import parse_qsl, urlencode

from ..errors import (
    FhirServerError,
    Issue,
    UnresolvedReference,
)
from ..fhir.entries import MISSING, REFUSED, entry_error, failure_kind
from ..mapping.entries import request_token
from ..mapping.updates import entry_lookups, matched_entries
from ..mapping.validate import json_path
from ..namespaces import REQUEST_ID, Namespaces
from .plan import Planner
from .repeats import same_action
from .state import PROVENANCE_ENTRY, RunState

log = logging.getLogger("fhircare.workflows")


class Reader(Planner):
    """The read side of a run."""

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
        lookups = (
            entry_lookups(self.mappings.mapping(self.name), state.payload, state.request_id, self.namespaces)
            if reads
            else []
        )
        entries += [{"request": {"method": "GET", "url": url}} for url in lookups]
        if reads:
            entries.append(
                {"request": {"method": "GET", "url": provenance_search(state.request_id, self.namespaces)}}
            )
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
        if lookups:  # what an earlier attempt with this request id left written (updates.py)
            start = len(conditional) + len(reads) + len(checks)
            state.matched = matched_entries(
                state.request_id, _searchsets(lookups, results[start : start + len(lookups)]), self.namespaces
            )
        if reads:
            provenances = _matches(results[-1])
            if provenances:
                return _provenance_written(provenances[0], state.fingerprint)
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
        for reference, result in zip(ordered, self.client.read_batch(ordered), strict=False):
            self._collect(state, reference, result)

    def _collect(self, state: RunState, reference: str, result: dict[str, Any]) -> None:
        status = str((result.get("response") or {}).get("status", ""))
        resource = result.get("resource")
        if failure_kind(result) not in (None, MISSING, REFUSED):  # throttled, no access, server failed
            raise entry_error(f"reading {reference.split('/')[0].split('?')[0]}", result)
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
        _refuse_missing(literal, _missing(checks, self.client.read_batch(checks)))
        log.info(
            "transaction refused although every reference exists",
            extra={"workflow": self.name, "status": refusal.http_status},
        )

    def committed_earlier(self, request_id: str, fingerprint: str = "") -> list[str] | None:
        """The references an earlier run with this request id wrote, from its Provenance (one search);
        refused (409) when that run had another payload (``fingerprint``: repeats.same_action)."""
        rtype, _, query = provenance_search(request_id, self.namespaces).partition("?")
        found = self.client.search(rtype, parse_qsl(query)).first()
        return None if found is None else _provenance_written(found, fingerprint)


def provenance_search(request_id: str, namespaces: Namespaces) -> str:
    """The search that finds the Provenance a run with this request id wrote (tagged with the current
    request-id system or, by an earlier release, with ``urn:fhircare:request-id``)."""
    token = request_token(request_id, PROVENANCE_ENTRY, namespaces)
    return "Provenance?" + urlencode({"_tag": token}, safe="|:/,")


def _provenance_written(provenance: dict[str, Any], fingerprint: str = "") -> list[str]:
    """What an earlier run wrote, from its Provenance: every target, then the Provenance itself; refused
    (409 at ``$.request_id``, nothing written) when that run had another workflow or payload."""
    same_action(provenance, fingerprint)
    targets = [t["reference"] for t in provenance.get("target", []) if t.get("reference")]
    return [*targets, f"Provenance/{provenance['id']}"]


def _searchsets(searches: list[str], results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The searchsets of ``searches``' answers; a search the server refused finds nothing, any other
    failure raises what it is."""
    found = []
    for search, result in zip(searches, results, strict=False):
        if failure_kind(result) not in (None, MISSING, REFUSED):
            raise entry_error(f"searching {search.split('?')[0]}", result)
        if isinstance(result.get("resource"), dict):
            found.append(result["resource"])
    return found


def _is_request_criteria(criteria: str, namespaces: Namespaces) -> bool:
    """True for the ``ifNoneExist`` on a request id (not on a business key such as an MRN)."""
    first = criteria.split("&")[0]
    return any(system + "|" in first for system in namespaces.systems(REQUEST_ID))


def _existence_check(reference: str) -> dict[str, Any]:
    """A batch entry that reads ``Type/id``: a read is the cheapest lookup on every server (a search on
    ``_id`` scans on some: Medplum's in-memory repository), and answers 404/410 when it does not exist."""
    return {"request": {"method": "GET", "url": reference}}


def _missing(checks: list[str], results: list[dict[str, Any]]) -> set[str]:
    """The references whose read (answered in ``results``, same order) found nothing: a 404 or 410
    (or another 4xx), or a 2xx without the resource itself. Any other failure is not "missing" and raises what it is
    (:func:`~fhircare.fhir.entries.entry_error`: throttled, no access, the server failed), so nothing
    is written on a doubtful check."""
    missing = set()
    for reference, result in zip(checks, results, strict=False):
        kind = failure_kind(result)
        resource = result.get("resource") or {}
        found = f"{resource.get('resourceType')}/{resource.get('id')}"
        if kind not in (None, MISSING, REFUSED):  # a 400 (a malformed id) names nothing, as before
            raise entry_error(f"checking that a {reference.split('/')[0]} exists", result)
        if kind is not None or found != reference:
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
    if failure_kind(result) not in (None, MISSING, REFUSED):  # throttled, no access, server failed
        raise entry_error(f"{where}: searching {value.split('?')[0]}", result)
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
