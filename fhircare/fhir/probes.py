"""Cheap probes of what a server does, sent through a client (any object with the interactions of
:class:`Prober`, such as :class:`~fhircare.fhir.client.FhirClient`). Each probe writes nothing a
server keeps, or deletes what it wrote before it returns."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Protocol

from ..errors import FhirServerError, PartialWrite, RateLimited, TransientError, UnresolvedStoredReference
from ..namespaces import REQUEST_ID, legacy_system
from .behaviour import ServerBehaviour
from .cleanup import PROBE_SYSTEM, ProbeLeftBehind, clean_up
from .paging import Page
from .ratelimit import status_code
from .throttle import Throttle
from .transaction import entry_reference, is_size_refusal, transaction_bundle

log = logging.getLogger("fhircare.fhir")

#: matches the _include probe looks at: one without the reference (a Task with no focus) cannot tell
INCLUDE_PROBE_COUNT = 10


class Pages(Protocol):
    def pages(self) -> Iterator[Page]: ...

    def __iter__(self) -> Iterator[dict[str, Any]]: ...


class Prober(Protocol):
    """The interactions a probe sends (what :class:`~fhircare.fhir.client.FhirClient` offers)."""

    @property
    def behaviour(self) -> ServerBehaviour: ...

    @property
    def throttle(self) -> Throttle: ...

    def learn(self, **changes: Any) -> None: ...

    def transaction(
        self, bundle: Mapping[str, Any], names: Sequence[str] | None = None, checked: bool = True
    ) -> dict[str, Any]: ...

    def create(self, resource: Mapping[str, Any], if_none_exist: str | None = None) -> dict[str, Any]: ...

    def delete(self, resource_type: str, resource_id: str) -> None: ...

    def search(self, resource_type: str, params: Any = None) -> Pages: ...


def probe_conditional_references(client: Prober) -> bool:
    """Does the server resolve a conditional reference inside a transaction?

    The probe creates a Basic whose ``subject`` is a conditional reference that matches nothing. A
    server that resolves conditional references must refuse the whole transaction (it writes nothing);
    a server that does not stores the reference verbatim: the probe then deletes the Basic it made.
    """
    probe = _basic("conditional-reference")
    probe["subject"] = {"reference": f"Basic?identifier={PROBE_SYSTEM}|{uuid.uuid4().hex}"}
    entry = {
        "fullUrl": f"urn:uuid:{uuid.uuid4()}",
        "resource": probe,
        "request": {"method": "POST", "url": "Basic"},
    }
    try:
        answer = client.transaction(transaction_bundle([entry]))
    except UnresolvedStoredReference as stored:  # the client saw the '?' kept verbatim
        written = next(iter(stored.written), None)
    except TransientError:
        raise
    except FhirServerError as exc:
        if exc.http_status is not None and 400 <= exc.http_status < 500:
            return True
        raise
    else:
        written = entry_reference((answer.get("entry") or [{}])[0])
    if written:
        _delete_quietly(client, [written])
    return False


def probe_legacy_stamps(client: Prober) -> bool:
    """Does the server hold a Provenance an earlier release tagged ``urn:fhircare:request-id``?
    A server that cannot answer the search is taken to hold some (the OR stays: always correct)."""
    try:
        page = next(
            client.search(
                "Provenance",
                [("_tag", legacy_system(REQUEST_ID) + "|"), ("_count", "1"), ("_elements", "id")],
            ).pages()
        )
    except FhirServerError as exc:
        if isinstance(exc, TransientError):
            raise
        return True
    return bool(page.matches)


def probe_include(client: Prober, resource_type: str, spec: str) -> bool | None:
    """Does ``_include=<spec>`` bring the referenced resources back? None when no match can tell."""
    param = spec.split(":")[1] if ":" in spec else spec
    page = next(
        client.search(resource_type, [("_include", spec), ("_count", str(INCLUDE_PROBE_COUNT))]).pages()
    )
    if not any(_reference_param(match, param) is not None for match in page.matches):
        return None  # nothing on the server points through the parameter yet
    return bool(page.included)


def _reference_param(resource: dict[str, Any], param: str) -> str | None:
    """The reference a search parameter of fhircare's views points through (``Task:patient`` -> ``for``)."""
    paths = {"patient": ("for", "subject", "patient", "beneficiary"), "subject": ("subject",)}
    for key in paths.get(param, (param,)):
        value = resource.get(key)
        if isinstance(value, list):
            value = value[0] if value else None
        if isinstance(value, dict) and isinstance(value.get("reference"), str):
            return str(value["reference"])
    return None


def probe_transaction_limit(client: Prober, entries: int = 9) -> bool | None:
    """Does the server take a transaction of ``entries`` conditional entries? Nine conditional deletes
    of an identifier nobody holds: a server that limits strictly isolated transactions refuses it for
    its size (Medplum: more than 8); any other server deletes nothing. None when the answer cannot tell."""
    marker = uuid.uuid4().hex
    bundle = transaction_bundle(
        [
            {"request": {"method": "DELETE", "url": f"Basic?identifier={PROBE_SYSTEM}|{marker}-{n}"}}
            for n in range(entries)
        ]
    )
    try:
        client.transaction(bundle)
    except TransientError:
        raise
    except FhirServerError as exc:
        if is_size_refusal(exc):
            known = client.behaviour.strict_refused_at
            client.learn(strict_refused_at=entries if known is None else min(known, entries))
            return False
        return None
    return True


def probe_atomicity(client: Prober) -> bool | None:
    """Does the server apply a transaction all or nothing? None when its answer cannot tell.

    A Basic is written first (on its own); then one transaction creates a second, marked Basic and
    updates the first with an ``If-Match`` on a version it never had, so its last entry must fail
    (``412``). An atomic server refuses the whole transaction and keeps nothing of it; a server that
    applies it entry by entry answers 200 with the create done and the update failed. Whatever was
    written, both Basics included, is deleted before the probe returns. A server that ignores
    ``If-Match`` (the update succeeds) cannot tell, nor can a 200 answer whose create failed too
    (each entry failing on its own is not all or nothing): only a whole refusal is atomicity.
    """
    first = client.create(_basic("atomicity"))
    marker = uuid.uuid4().hex
    second = _basic("atomicity")
    second["identifier"] = [{"system": PROBE_SYSTEM, "value": marker}]
    wrong = f'W/"{_version_number((first.get("meta") or {}).get("versionId")) + 1000}"'
    entries = [
        {
            "fullUrl": f"urn:uuid:{uuid.uuid4()}",
            "resource": second,
            "request": {"method": "POST", "url": "Basic"},
        },
        {
            "fullUrl": f"Basic/{first['id']}",
            "resource": {
                **first,
                "meta": {},
                "code": {"text": "fhircare atomicity probe (must not be kept)"},
            },
            "request": {"method": "PUT", "url": f"Basic/{first['id']}", "ifMatch": wrong},
        },
    ]
    written = [f"Basic/{first['id']}"]
    atomic: bool | None = None
    failure: FhirServerError | None = None
    search = True  # whether the second Basic may be on the server unreported (found by its marker)
    try:
        answer = client.transaction(
            transaction_bundle(entries), names=["create", "update with a wrong If-Match"], checked=False
        )
    except PartialWrite as partial:  # throttled after the create was committed: it names what it wrote
        written += [r for r in partial.written if r not in written]
        failure, search = partial, False
    except TransientError as exc:  # throttled (nothing was processed), failed, or its answer lost
        failure, search = exc, not isinstance(exc, RateLimited)
    except FhirServerError:  # refused whole: atomic, unless the create was kept all the same
        atomic = True
    else:
        atomic = _entry_by_entry_verdict(answer)
        written += [
            r
            for e in answer.get("entry") or []
            if 200 <= status_code(e) < 300 and (r := entry_reference(e)) and r not in written
        ]
    kept, left = clean_up(client, list(reversed(written)), marker if search else None)
    if atomic is True and kept != []:  # the create was kept, or nothing could show it was not
        atomic = False if kept else None
    if left:
        raise ProbeLeftBehind(left, None if failure else atomic, failure)
    if failure is not None:
        raise failure
    return atomic


def _entry_by_entry_verdict(answer: Mapping[str, Any]) -> bool | None:
    """What a 200 answer to the atomicity probe shows: False when its create was applied while its
    update failed (entry by entry); None when the update was taken (If-Match ignored) or the create
    failed on its own (each entry failing by itself shows nothing of all or nothing)."""
    statuses = [status_code(e) for e in answer.get("entry") or []]
    if len(statuses) != 2 or not 200 <= statuses[0] < 300:
        return None
    return None if 200 <= statuses[1] < 300 else False


def _basic(code: str) -> dict[str, Any]:
    return {
        "resourceType": "Basic",
        "meta": {"tag": [{"system": PROBE_SYSTEM, "code": code}]},
        "code": {"text": "fhircare capability probe (deleted right away)"},
    }


def _version_number(version: Any) -> int:
    text = str(version or "")
    return int(text) if text.isdigit() else 1


def _delete_quietly(client: Prober, references: list[str]) -> None:
    for reference in references:
        rtype, _, rid = reference.partition("/")
        try:
            client.delete(rtype, rid)
        except FhirServerError:
            log.warning("could not delete a capability probe", extra={"resource_type": rtype})
