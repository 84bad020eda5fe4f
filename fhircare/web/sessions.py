"""Server-side session storage: Redis when configured (shared by every replica), memory otherwise.

The browser holds only an opaque random id in an HttpOnly cookie; tokens never leave the server.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any, Protocol

COOKIE = "fhircare_session"
SESSION_TTL = 8 * 3600
LAUNCH_TTL = 600


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

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> SmartSession:
        return cls(**json.loads(text))


class Store(Protocol):
    def get(self, key: str) -> str | None: ...
    def put(self, key: str, value: str, ttl: int) -> None: ...
    def pop(self, key: str) -> str | None: ...


class MemoryStore:
    def __init__(self) -> None:
        self._items: dict[str, tuple[float, str]] = {}
        self._lock = threading.Lock()

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


class Sessions:
    """Sessions and pending launches, namespaced in one store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def load(self, sid: str | None) -> SmartSession | None:
        if not sid or len(sid) > 100:
            return None
        text = self.store.get(f"fhircare:session:{sid}")
        return SmartSession.from_json(text) if text else None

    def save(self, sid: str, session: SmartSession) -> None:
        self.store.put(f"fhircare:session:{sid}", session.to_json(), SESSION_TTL)

    def drop(self, sid: str) -> None:
        self.store.pop(f"fhircare:session:{sid}")

    def remember_launch(self, state: str, data: dict[str, Any]) -> None:
        self.store.put(f"fhircare:launch:{state}", json.dumps(data), LAUNCH_TTL)

    def take_launch(self, state: str) -> dict[str, Any] | None:
        text = self.store.pop(f"fhircare:launch:{state}")
        found: dict[str, Any] | None = json.loads(text) if text else None
        return found
