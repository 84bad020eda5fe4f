"""Client-side pacing: requests wait their turn instead of running into a server's quota.

Two sources, both optional: a rate the user sets (``FHIRCARE_MAX_REQUESTS_PER_MINUTE``: a token
bucket, one token a request, refilled at that rate, holding at most a second's worth), and what the
server says (a ``RateLimit`` header whose quota is spent holds every request until its reset). A
request waits; pacing never fails one. The clock and the sleep are injectable, so tests need no
wall clock.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping

from .ratelimit import quota_state

Clock = Callable[[], float]
Sleep = Callable[[float], None]


class Pacer:
    """Decides when the next request may go (thread-safe: clients are shared by threads)."""

    def __init__(
        self,
        max_per_minute: float | None = None,
        burst: int | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
    ) -> None:
        if max_per_minute is not None and not (math.isfinite(max_per_minute) and max_per_minute > 0):
            raise ValueError(f"max_per_minute must be a finite number above 0, not {max_per_minute!r}")
        self.rate = max_per_minute / 60.0 if max_per_minute else None
        #: tokens the bucket holds at most: a burst of that many requests goes at once
        self.capacity = float(burst or max(1, int((max_per_minute or 60) // 60)))
        self.clock = clock
        self.sleep = sleep
        self._tokens = self.capacity
        self._stamp = clock()
        self._hold_until = 0.0
        self._lock = threading.Lock()
        #: seconds requests spent waiting here, in all
        self.waited = 0.0

    def acquire(self, max_hold: float | None = None) -> float:
        """Wait until a request may go; the seconds waited. A server's hold longer than ``max_hold``
        is not waited out here (the request goes, and its answer names the wait)."""
        with self._lock:
            now = self.clock()
            start = now
            if self._hold_until > now and (max_hold is None or self._hold_until - now <= max_hold):
                start = self._hold_until
            if self.rate is not None:
                self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
                self._stamp = now
                self._tokens -= 1.0  # taken now; a debt is paid by waiting
                if self._tokens < 0:
                    start = max(start, now - self._tokens / self.rate)
            wait = start - now
            self.waited += wait
        if wait > 0:
            self.sleep(wait)
        return wait

    def hold(self, seconds: float) -> None:
        """No request goes for ``seconds`` from now (a throttled answer named that wait)."""
        if not math.isfinite(seconds):
            return  # no wait a request could end (the throttled answer's own wait decides)
        with self._lock:
            self._hold_until = max(self._hold_until, self.clock() + max(0.0, seconds))

    def held_for(self) -> float:
        """Seconds until the current hold ends (0 when there is none)."""
        with self._lock:
            return max(0.0, self._hold_until - self.clock())

    def observe(self, headers: Mapping[str, str]) -> None:
        """Learn from an answer's ``RateLimit`` headers: a spent quota holds requests until its reset."""
        remaining, reset = quota_state(headers)
        if remaining is not None and remaining <= 0 and reset:
            self.hold(reset)


class PacerRegistry:
    """The process's pacers, one per base URL, identity and rate: every client made from settings for
    the same server and identity waits its turn at the same pacer, whichever thread it serves (the
    sidecar's request threads each have a client of their own). Bounded: the least recently used
    pacer is dropped past ``size`` (a passthrough sidecar sees a token per caller)."""

    def __init__(self, clock: Clock = time.monotonic, sleep: Sleep = time.sleep, size: int = 1024) -> None:
        self.clock = clock
        self.sleep = sleep
        self.size = size
        self._pacers: dict[tuple[str, str, float | None], Pacer] = {}
        self._lock = threading.Lock()

    def pacer_for(self, base_url: str, identity: str, max_per_minute: float | None) -> Pacer:
        key = (base_url.rstrip("/"), identity, max_per_minute)
        with self._lock:
            pacer = self._pacers.pop(key, None)
            if pacer is None:
                pacer = Pacer(max_per_minute, clock=self.clock, sleep=self.sleep)
            self._pacers[key] = pacer  # (re)inserted last: the most recently used
            for old in list(self._pacers)[: max(0, len(self._pacers) - self.size)]:
                del self._pacers[old]
            return pacer


#: the pacers of this process (a test replaces it with one on a fake clock)
PACERS = PacerRegistry()


def shared_pacer(base_url: str, identity: str, max_per_minute: float | None) -> Pacer:
    """This process's pacer for ``identity`` on ``base_url`` at ``max_per_minute`` (see :class:`PacerRegistry`)."""
    return PACERS.pacer_for(base_url, identity, max_per_minute)
