"""Server-side session storage: Redis when configured (shared by every replica), memory otherwise.

The browser holds only an opaque random id in an HttpOnly cookie; tokens never leave the server, and
what is stored is encrypted (Fernet, with a key derived from the secret key by HKDF), so a copy of
Redis holds no usable token. Pending launches are short-lived and, in memory, bounded in number.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass, fields
from typing import Any, Protocol

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

COOKIE = "fhircare_session"
SESSION_TTL = 8 * 3600
LAUNCH_TTL = 300
LAUNCH_COOKIE = "fhircare_launch"  # binds a pending launch to the browser that started it
MAX_PENDING_LAUNCHES = 256  # in memory; beyond it the oldest pending launch is dropped


@dataclass
class SmartSession:
    access_token: str
    refresh_token: str | None
    expires_at: float
    scopes: list[str]
    patient: str | None
    user: str | None
    iss: str
    token_endpoint: str
    csrf: str
    revocation_endpoint: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> SmartSession:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in json.loads(text).items() if k in known})


class Store(Protocol):
    def get(self, key: str) -> str | None: ...
    def put(self, key: str, value: str, ttl: int) -> None: ...
    def pop(self, key: str) -> str | None: ...


class MemoryStore:
    """A dict with expiry; with ``max_items``, the oldest entry goes when a new one would exceed it."""

    def __init__(self, max_items: int | None = None) -> None:
        self._items: OrderedDict[str, tuple[float, str]] = OrderedDict()
        self._lock = threading.Lock()
        self.max_items = max_items

    def __len__(self) -> int:
        with self._lock:
            self._purge()
            return len(self._items)

    def _purge(self) -> None:
        now = time.time()
        for key in [k for k, (expires, _) in self._items.items() if expires < now]:
            del self._items[key]

    def get(self, key: str) -> str | None:
        with self._lock:
            item = self._items.get(key)
            if item is None or item[0] < time.time():
                self._items.pop(key, None)
                return None
            return item[1]

    def put(self, key: str, value: str, ttl: int) -> None:
        with self._lock:
            self._items[key] = (time.time() + ttl, value)
            self._items.move_to_end(key)
            if self.max_items is not None and len(self._items) > self.max_items:
                self._purge()
                while len(self._items) > self.max_items:
                    self._items.popitem(last=False)

    def pop(self, key: str) -> str | None:
        with self._lock:
            item = self._items.pop(key, None)
        return item[1] if item and item[0] >= time.time() else None


class RedisStore:
    def __init__(self, url: str) -> None:
        import redis

        self._redis = redis.Redis.from_url(url, decode_responses=True, socket_timeout=3)

    def get(self, key: str) -> str | None:
        value: Any = self._redis.get(key)
        return str(value) if value is not None else None

    def put(self, key: str, value: str, ttl: int) -> None:
        self._redis.set(key, value, ex=ttl)

    def pop(self, key: str) -> str | None:
        value: Any = self._redis.getdel(key)  # one-time values (launch state) cannot be replayed
        return str(value) if value is not None else None


def new_id() -> str:
    return secrets.token_urlsafe(32)


def session_cipher(secret_key: str) -> Fernet:
    """The Fernet key of stored sessions: HKDF-SHA256 of the sidecar's secret key."""
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"fhircare session store").derive(
        secret_key.encode("utf-8")
    )
    return Fernet(base64.urlsafe_b64encode(key))


class Sessions:
    """Sessions and pending launches, namespaced, encrypted; launches may live in a store of their own."""

    def __init__(self, store: Store, cipher: Fernet, launches: Store | None = None) -> None:
        self.store = store
        self.launches = launches if launches is not None else store
        self.cipher = cipher

    def _seal(self, text: str) -> str:
        return self.cipher.encrypt(text.encode("utf-8")).decode("ascii")

    def _open(self, sealed: str | None, ttl: int) -> str | None:
        if not sealed:
            return None
        try:
            return self.cipher.decrypt(sealed.encode("ascii"), ttl=ttl).decode("utf-8")
        except (InvalidToken, ValueError):
            return None  # not ours, tampered with, or older than its lifetime

    def load(self, sid: str | None) -> SmartSession | None:
        if not sid or len(sid) > 100:
            return None
        text = self._open(self.store.get(f"fhircare:session:{sid}"), SESSION_TTL)
        return SmartSession.from_json(text) if text else None

    def save(self, sid: str, session: SmartSession) -> None:
        self.store.put(f"fhircare:session:{sid}", self._seal(session.to_json()), SESSION_TTL)

    def drop(self, sid: str) -> None:
        self.store.pop(f"fhircare:session:{sid}")

    def remember_launch(self, state: str, data: dict[str, Any]) -> None:
        self.launches.put(f"fhircare:launch:{state}", self._seal(json.dumps(data)), LAUNCH_TTL)

    def take_launch(self, state: str) -> dict[str, Any] | None:
        if not state or len(state) > 100:
            return None
        text = self._open(self.launches.pop(f"fhircare:launch:{state}"), LAUNCH_TTL)
        found: dict[str, Any] | None = json.loads(text) if text else None
        return found
