"""When is a run a repeat of an earlier one? A request id names one intended action.

An explicit ``request_id`` is the caller's word: the same id is the same action, whatever changed since.
A payload without one gets an id derived from its content, and then an earlier run with the same content
is a repeat only if nothing it wrote has changed since: each resource it created is still at its first
version, and each resource it updated has exactly one version after the one it read (the run's own;
the earlier Provenance records that pre-image as an ``entity`` with role ``revision``). Otherwise the same
content is a new action (resuming a task: on-hold -> in-progress a second time) and gets a follow-on id
derived from the earlier run's Provenance, so a resend of *that* action is recognised in its turn.

Either way, a request id answers with the earlier run only when that run was the same workflow with the
same payload: its Provenance carries a fingerprint of both (``payload_fingerprint``, a ``meta.tag``), and a
run whose fingerprint differs is refused (409 at ``$.request_id``) with nothing written - patient A's
consumed id sent with patient B's form must not tell B's coordinator "done". A Provenance written before
the fingerprint existed carries none and is taken as the same action, as before.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from ..errors import Conflict, Issue
from ..fhir import FhirClient
from ..namespaces import Namespaces

REVISION = "revision"
#: the code system (under the namespace base) of the Provenance tag holding a run's payload fingerprint
FINGERPRINT = "CodeSystem/payload-fingerprint"
REUSED = "this request id was used for another action; nothing was written"


def payload_fingerprint(workflow: str, payload: Mapping[str, Any]) -> str:
    """A digest of the workflow and its payload as the caller sent it, without ``request_id``."""
    body = {k: v for k, v in payload.items() if k != "request_id"}
    canonical = json.dumps({"workflow": workflow, "payload": body}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]


def stamp_fingerprint(provenance: dict[str, Any], fingerprint: str, namespaces: Namespaces) -> None:
    """Tag a run's Provenance with its payload fingerprint (none when the state holds none: golden cases)."""
    if fingerprint:
        meta = provenance.setdefault("meta", {})
        meta["tag"] = [*meta.get("tag", []), {"system": namespaces.base + FINGERPRINT, "code": fingerprint}]


def same_action(provenance: Mapping[str, Any], fingerprint: str) -> None:
    """Refuse (409, ``$.request_id``) when an earlier run's Provenance holds another payload fingerprint."""
    tags = ((provenance.get("meta") or {}).get("tag")) or []
    earlier = {str(t.get("code")) for t in tags if str(t.get("system", "")).endswith("/" + FINGERPRINT)}
    if fingerprint and earlier and fingerprint not in earlier:
        raise Conflict(REUSED, [Issue("error", "conflict", REUSED, ("$.request_id",))])


def follow_on_id(request_id: str, provenance: str) -> str:
    """The id of the next action with the same content as the run that wrote ``provenance``."""
    digest = hashlib.sha256(f"{request_id}|{provenance}".encode()).hexdigest()[:12]
    return f"{request_id.split('~')[0]}~{digest}"


def unchanged_since(client: FhirClient, written: list[str]) -> bool:
    """True when nothing an earlier run wrote (``written``, its Provenance last) changed after it.

    One batch: the Provenance, and the history of every resource it names."""
    provenance_ref, targets = written[-1], [w for w in written[:-1] if w.count("/") == 1]
    results = client.read_batch([provenance_ref, *(f"{target}/_history" for target in targets)])
    provenance = (results[0].get("resource") or {}) if results else {}
    if provenance.get("resourceType") != "Provenance":
        return False
    read_versions = _pre_images(provenance)
    for target, result in zip(targets, results[1:], strict=False):
        history = _versions(result.get("resource"))
        if not history:
            return False  # deleted, or unreadable: not the state the earlier run left
        if not _one_step_after(history, read_versions.get(target)):
            return False
    return True


def still_written(client: FhirClient, written: list[str]) -> list[str]:
    """``written`` (an earlier run's, from its Provenance, the Provenance last) when that run is whole:
    its Provenance and every resource it names exist, and each resource it updated has moved past
    the version it read. One batch.

    On a server that applies a transaction entry by entry, a failed run's Provenance may commit before
    the run undoes what it wrote (Provenance first, see :mod:`.undo`). A second submit of the same
    request that finds it in that moment must not be told "done" about what the undo then removes: it
    is told that the earlier attempt is not whole, and nothing is written (the undo would race it)."""
    provenance_ref = written[-1]
    targets = [w.split("/_history/")[0] for w in written[:-1]]
    readable = sorted({t for t in targets if t.count("/") == 1 and not t.startswith("urn:")})
    found = client.read_found([provenance_ref, *readable])
    missing = [t for t in targets if t not in found]
    if provenance_ref in found:
        read_versions = _pre_images(found[provenance_ref])
        missing += [  # an update of the run that did not commit: still at the version it read
            target
            for target, version in read_versions.items()
            if str(((found.get(target) or {}).get("meta") or {}).get("versionId")) == version
        ]
    else:
        missing.append(provenance_ref)
    if missing:
        raise Conflict(
            f"an earlier attempt with this request id is not whole ({', '.join(sorted(set(missing)))} "
            "missing or not updated: it failed and is being undone, or they changed since); nothing was "
            "written. Run the same request again in a moment, or give a new request_id"
        )
    return written


def _pre_images(provenance: dict[str, Any]) -> dict[str, str]:
    """``Type/id`` -> the version the earlier run read before updating it."""
    found = {}
    for entity in provenance.get("entity") or []:
        reference = str((entity.get("what") or {}).get("reference") or "")
        if entity.get("role") == REVISION and "/_history/" in reference:
            target, _, version = reference.partition("/_history/")
            found[target] = version
    return found


def _versions(bundle: Any) -> list[tuple[str, str]]:
    """``(lastUpdated, versionId)`` of every version in a history Bundle (any order a server gives)."""
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        return []
    versions = []
    for entry in bundle.get("entry") or []:
        meta = (entry.get("resource") or {}).get("meta") or {}
        if meta.get("versionId"):
            versions.append((str(meta.get("lastUpdated", "")), str(meta["versionId"])))
    return versions


def _one_step_after(history: list[tuple[str, str]], read_version: str | None) -> bool:
    if read_version is None:  # created by the earlier run: still its first version
        return len(history) == 1
    before = [updated for updated, version in history if version == read_version]
    if not before:
        return False
    later = [version for updated, version in history if version != read_version and updated >= before[0]]
    return len(later) == 1


def answered_as_before(
    client: FhirClient, answer: Mapping[str, Any], written: list[str], fingerprint: str, created: list[str]
) -> None:
    """A transaction whose Provenance's conditional create matched an earlier run's (a repeat the server
    found): that Provenance, as the answer returned it (read once where the server returns none), must be
    this action's. Else 409 - after deleting what this transaction did create (an entry the earlier run
    had not: another payload with more items; no run without reads updates anything), newest first."""
    if not fingerprint or not written:
        return
    entries = answer.get("entry") or []
    provenance = (entries[-1].get("resource") if entries else None) or {}
    if provenance.get("resourceType") != "Provenance":
        provenance = client.read_reference(written[-1])
    try:
        same_action(provenance, fingerprint)
    except Conflict:
        for reference in reversed(created):
            client.delete(*reference.split("/_history")[0].split("/")[-2:])
        raise
