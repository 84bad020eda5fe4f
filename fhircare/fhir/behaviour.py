"""What a FHIR server actually does, learned by cheap probes and from its answers, remembered per base URL.

A CapabilityStatement is a declaration, not the truth: a server may declare no ``searchInclude``
although ``_include`` works, or declare ``transaction`` and process it entry by entry. fhircare
therefore learns the few behaviours its strategy depends on:

- ``conditional_references``: whether the server resolves ``Type?query`` references inside a
  transaction (learned by a probe that a resolving server refuses, so it writes nothing there);
- ``atomic_transactions``: False once a transaction came back HTTP 200 with a failed entry inside;
- ``strict_refused_at``: the smallest transaction with conditional entries (``ifNoneExist``) the
  server refused for its size (Medplum refuses more than 8 such entries);
- ``include``: per ``Type:param``, whether included resources come back (an ``_include`` search
  with ``_count=10``: one of them must point through the parameter);
- ``offset_paging``: whether ``_offset`` moves through results when the server gives no next links;
- ``legacy_stamps``: whether the server holds runs an earlier release stamped with
  ``urn:fhircare:request-id`` (one ``_tag=system|`` search on Provenance: every run writes one). Where
  it holds none, request-id searches and ``ifNoneExist`` name the current system alone.

What is learned is kept in a small JSON file in the user's cache directory (``FHIRCARE_CACHE_DIR``,
else ``$XDG_CACHE_HOME/fhircare``, else ``~/.cache/fhircare``), so a second process does not probe again.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import uuid
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import FhirServerError, TransientError, UnresolvedStoredReference
from ..namespaces import DEFAULT_NAMESPACES, REQUEST_ID, legacy_system

if TYPE_CHECKING:
    from .client import FhirClient

log = logging.getLogger("fhircare.fhir")

# a marker that matches nothing; the probe is deleted right away, so no deployment setting is needed
PROBE_SYSTEM = DEFAULT_NAMESPACES.system("probe")
STORE_FILE = "servers.json"
#: matches the _include probe looks at: one without the reference (a Task with no focus) cannot tell
INCLUDE_PROBE_COUNT = 10


@dataclass
class ServerBehaviour:
    """What one server was seen to do (None: not learned yet)."""

    conditional_references: bool | None = None
    atomic_transactions: bool | None = None
    strict_refused_at: int | None = None
    include: dict[str, bool] = field(default_factory=dict)
    offset_paging: bool | None = None
    legacy_stamps: bool | None = None

    def conditional_fits(self, entries: int) -> bool:
        """True unless the server was seen to refuse a conditional transaction of this size."""
        return self.strict_refused_at is None or entries < self.strict_refused_at

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> ServerBehaviour:
        if not isinstance(data, dict):
            return cls()
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        if not isinstance(values.get("include", {}), dict):
            values.pop("include")
        return cls(**values)


class BehaviourStore:
    """Learned behaviour per base URL in one JSON file; ``directory=None`` keeps it in memory only."""

    def __init__(self, directory: Path | None) -> None:
        self.path = directory / STORE_FILE if directory is not None else None
        self._lock = threading.Lock()
        self._memory: dict[str, dict[str, Any]] = {}

    def load(self, base_url: str) -> ServerBehaviour:
        with self._lock:
            data = self._read()
        return ServerBehaviour.from_json(data.get(base_url))

    def save(self, base_url: str, behaviour: ServerBehaviour) -> None:
        with self._lock:
            data = self._read()
            data[base_url] = behaviour.to_json()
            self._memory = data
            if self.path is None:
                return
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                handle, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".servers-", suffix=".json")
                with os.fdopen(handle, "w", encoding="utf-8") as out:
                    json.dump(data, out, indent=1, sort_keys=True)
                os.replace(tmp, self.path)
            except OSError as exc:  # a read-only home must not stop a workflow; it only costs a probe
                log.info("could not keep learned server behaviour", extra={"reason": exc.strerror})

    def _read(self) -> dict[str, dict[str, Any]]:
        if self.path is None or not self.path.is_file():
            return dict(self._memory)
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return dict(self._memory)
        return data if isinstance(data, dict) else {}


# ---- probes -------------------------------------------------------------------------------


def probe_conditional_references(client: FhirClient) -> bool:
    """Does the server resolve a conditional reference inside a transaction?

    The probe creates a Basic whose ``subject`` is a conditional reference that matches nothing. A
    server that resolves conditional references must refuse the whole transaction (it writes nothing);
    a server that does not stores the reference verbatim: the probe then deletes the Basic it made.
    """
    marker = uuid.uuid4().hex
    probe = {
        "resourceType": "Basic",
        "meta": {"tag": [{"system": PROBE_SYSTEM, "code": "conditional-reference"}]},
        "code": {"text": "fhircare capability probe (deleted right away)"},
        "subject": {"reference": f"Basic?identifier={PROBE_SYSTEM}|{marker}"},
    }
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": f"urn:uuid:{uuid.uuid4()}",
                "resource": probe,
                "request": {"method": "POST", "url": "Basic"},
            }
        ],
    }
    try:
        answer = client.transaction(bundle)
    except UnresolvedStoredReference as stored:  # the client saw the '?' kept verbatim
        written = next(iter(stored.written), None)
    except TransientError:
        raise
    except FhirServerError as exc:
        if exc.http_status is not None and 400 <= exc.http_status < 500:
            return True
        raise
    else:
        from .transaction import entry_reference

        entry = (answer.get("entry") or [{}])[0]
        written = entry_reference(entry)
    if written:
        try:
            rtype, _, rid = written.partition("/")
            client.delete(rtype, rid)
        except FhirServerError:
            log.warning("could not delete the conditional-reference probe", extra={"resource_type": "Basic"})
    return False


def probe_legacy_stamps(client: FhirClient) -> bool:
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


def probe_include(client: FhirClient, resource_type: str, spec: str) -> bool | None:
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


def probe_transaction_limit(client: FhirClient, entries: int = 9) -> bool | None:
    """Does the server take a transaction of ``entries`` conditional entries? Nine conditional deletes
    of an identifier nobody holds: a server that limits strictly isolated transactions refuses it for
    its size (Medplum: more than 8); any other server deletes nothing. None when the answer cannot tell."""
    from .transaction import is_size_refusal

    marker = uuid.uuid4().hex
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"request": {"method": "DELETE", "url": f"Basic?identifier={PROBE_SYSTEM}|{marker}-{n}"}}
            for n in range(entries)
        ],
    }
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
