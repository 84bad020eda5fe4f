"""What a FHIR server was seen to do, remembered per base URL and identity (no HTTP here).

A CapabilityStatement is a declaration, not the truth: a server may declare no ``searchInclude``
although ``_include`` works, or declare ``transaction`` and process it entry by entry. fhircare
therefore learns the few behaviours its strategy depends on (see :mod:`fhircare.fhir.policy`, which
decides from them and learns them through the client):

- ``conditional_references``: whether the server resolves ``Type?query`` references inside a
  transaction (learned by a probe that a resolving server refuses, so it writes nothing there);
- ``atomic_transactions``: False once a transaction came back HTTP 200 with a failed entry inside,
  True once ``fhircare check`` saw a transaction with a failing last entry write nothing;
- ``strict_refused_at``: the smallest transaction with conditional entries (``ifNoneExist``) the
  server refused for its size (Medplum refuses more than 8 such entries);
- ``include``: per ``Type:param``, whether included resources come back (an ``_include`` search
  with ``_count=10``: one of them must point through the parameter);
- ``offset_paging``: whether ``_offset`` moves through results when the server gives no next links;
- ``legacy_stamps``: whether the server holds runs an earlier release stamped with
  ``urn:fhircare:request-id`` (one ``_tag=system|`` search on Provenance: every run writes one). Where
  it holds none, request-id searches and ``ifNoneExist`` name the current system alone.

One base URL may serve tenants that behave differently (Medplum projects with and without
transaction bundles), so what is learned is kept per base URL **and** identity (see
:mod:`fhircare.fhir.identity`): the key is the base URL alone for a client without credentials, else
``<base> #<identity>``. It is kept in a small JSON file in the user's cache directory
(``FHIRCARE_CACHE_DIR``, else ``$XDG_CACHE_HOME/fhircare``, else ``~/.cache/fhircare``), so a second
process does not probe again; the file holds no token (identities are names or digests keyed by a
random secret kept beside it, ``servers.key``, mode 0600).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import tempfile
import threading
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

log = logging.getLogger("fhircare.fhir")

STORE_FILE = "servers.json"
#: the key of the digests that name identities in STORE_FILE, beside it (mode 0600, made once)
KEY_FILE = "servers.key"
#: servers x identities kept in the file; the least recently saved are dropped first
MAX_KEYS = 256


def store_key(base_url: str, identity: str = "") -> str:
    """The key of what is learned for ``identity`` on ``base_url`` (the bare base without one)."""
    base = base_url.rstrip("/")
    return f"{base} #{identity}" if identity else base


@dataclass
class ServerBehaviour:
    """What one server was seen to do for one identity (None: not learned yet)."""

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
    """Learned behaviour per key (:func:`store_key`) in one JSON file; ``directory=None`` keeps it in
    memory only."""

    def __init__(self, directory: Path | None) -> None:
        self.path = directory / STORE_FILE if directory is not None else None
        self._lock = threading.Lock()
        self._memory: dict[str, dict[str, Any]] = {}
        self._secret: bytes | None = None

    def secret(self) -> bytes:
        """The key of the digests that name identities here (see :mod:`fhircare.fhir.identity`):
        random, made once per cache directory and kept beside the file (mode 0600), so the file alone
        cannot be matched against guessed tokens. In memory only when there is no directory (or it
        cannot be written): what is learned is then kept for this process only."""
        with self._lock:
            if self._secret is None:
                self._secret = self._load_secret() if self.path is not None else None
                if self._secret is None:
                    self._secret = secrets.token_bytes(32)
            return self._secret

    def _load_secret(self) -> bytes | None:
        assert self.path is not None
        key_path = self.path.parent / KEY_FILE
        try:
            return bytes.fromhex(key_path.read_text(encoding="ascii").strip()) or None
        except FileNotFoundError:
            pass
        except (OSError, ValueError):
            return None
        try:  # written whole under another name, then linked in: a racing process reads it whole
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".servers-", suffix=".key")
            try:
                with os.fdopen(handle, "w", encoding="ascii") as out:  # mkstemp makes it 0600
                    out.write(secrets.token_hex(32))
                os.link(tmp, key_path)
            except FileExistsError:
                pass
            finally:
                os.unlink(tmp)
            secret = bytes.fromhex(key_path.read_text(encoding="ascii").strip())
        except (OSError, ValueError) as exc:
            log.info("could not keep the key of learned behaviour", extra={"reason": str(exc)})
            return None
        self._forget_unkeyed()
        return secret or None

    def _forget_unkeyed(self) -> None:
        """Drop identities an earlier release digested without a key (the file had no key yet)."""
        data = self._read()
        kept = {k: v for k, v in data.items() if " #" not in k or k.split(" #", 1)[1].startswith("profile:")}
        if len(kept) != len(data):
            self._write(kept)

    def load(self, key: str) -> ServerBehaviour:
        with self._lock:
            data = self._read()
        return ServerBehaviour.from_json(data.get(key))

    def keys(self) -> list[str]:
        """The keys something is remembered for, least recently saved first."""
        with self._lock:
            return list(self._read())

    def save(self, key: str, behaviour: ServerBehaviour) -> None:
        with self._lock:
            data = self._read()
            data.pop(key, None)  # re-inserted last: the most recently saved
            data[key] = behaviour.to_json()
            for old in list(data)[: max(0, len(data) - MAX_KEYS)]:
                del data[old]
            self._write(data)

    def _write(self, data: dict[str, dict[str, Any]]) -> None:
        self._memory = data
        if self.path is None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".servers-", suffix=".json")
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                json.dump(data, out, indent=1)
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
