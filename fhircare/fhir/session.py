"""The one HTTP path: a ``requests.Session`` with retries that know which requests are safe to repeat.

urllib3's ``Retry`` decides by HTTP method only, but for FHIR a POST is safe to repeat when it is a
conditional create or a transaction whose entries are all conditional. The client marks such
requests, and :class:`IdempotencyRoutingAdapter` sends them through a pool whose ``Retry`` also
covers POST, while every other POST goes through a pool that never re-sends it once it was sent.

What requests reads from the environment on every request when ``trust_env`` is on (proxy
variables, ``NO_PROXY``, ``~/.netrc``) is read once instead: the proxy variables when the settings
or the client are made, and per origin (scheme, host, port) the proxies and netrc credentials that
apply, on its first request (:class:`OriginEnvironment`). The session itself never looks again.
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase
from requests.utils import get_netrc_auth
from urllib3.util.retry import Retry

#: 429 is not among them: a throttled request is sent again by fhir/throttle.py's ThrottlingAdapter,
#: which holds every wait to the throttle budget (urllib3 would sleep any Retry-After, however long)
RETRY_STATUSES = frozenset({502, 503, 504})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
IDEMPOTENT_MARK = "_fhircare_idempotent"


class _ThrottleAwareRetry(Retry):
    """urllib3's Retry, except that a 429 is never retried here (it would sleep any Retry-After)."""

    def is_retry(self, method: str, status_code: int, has_retry_after: bool = False) -> bool:
        return status_code != 429 and super().is_retry(method, status_code, has_retry_after)


def make_retry(total: int, backoff_factor: float, allow_post: bool) -> Retry:
    """A Retry for connect errors, read errors on safe methods, and 502/503/504 with Retry-After."""
    methods = SAFE_METHODS | {"POST"} if allow_post else SAFE_METHODS
    return _ThrottleAwareRetry(
        total=total,
        connect=total,
        read=total,
        status=total,
        other=0,
        backoff_factor=backoff_factor,
        backoff_max=10.0,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=methods,
        respect_retry_after_header=True,
        raise_on_status=False,
        raise_on_redirect=False,
    )


def mark_idempotent(request: requests.PreparedRequest) -> None:
    setattr(request, IDEMPOTENT_MARK, True)


class IdempotencyRoutingAdapter(HTTPAdapter):
    """Sends idempotent-marked requests through a POST-retrying pool, the rest through a plain one.

    PUT carrying If-Match is still retried: repeating it after a lost answer yields a 412 that the
    workflows resolve by looking the request id up (see workflows/base.py).
    """

    def __init__(self, total: int, backoff_factor: float, pool_maxsize: int = 16) -> None:
        super().__init__(
            max_retries=make_retry(total, backoff_factor, allow_post=False), pool_maxsize=pool_maxsize
        )
        self._idempotent = HTTPAdapter(
            max_retries=make_retry(total, backoff_factor, allow_post=True), pool_maxsize=pool_maxsize
        )

    def send(  # type: ignore[override]
        self, request: requests.PreparedRequest, **kwargs: Any
    ) -> requests.Response:
        if request.method == "POST" and getattr(request, IDEMPOTENT_MARK, False):
            return self._idempotent.send(request, **kwargs)
        return super().send(request, **kwargs)

    def close(self) -> None:
        self._idempotent.close()
        super().close()


def bypasses_proxy(host: str, port: int | None, no_proxy: str) -> bool:
    """Whether ``NO_PROXY`` (names, ``.domain`` suffixes, ``host:port``, CIDR blocks, ``*``) exempts a host."""
    host = host.lower()
    for raw in no_proxy.replace(" ", ",").split(","):
        entry = raw.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return True
        if "/" in entry:
            try:
                if ipaddress.ip_address(host) in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                pass
            continue
        name = entry.lstrip(".")
        if host == name or host.endswith("." + name) or (port is not None and f"{host}:{port}" == entry):
            return True
    return False


class OriginEnvironment:
    """Per origin, what the environment says once: the proxies to use and netrc credentials.

    ``proxies`` is a snapshot of the proxy variables (see :func:`environment_proxies`); with
    ``trust_env`` off neither proxies nor ``~/.netrc`` are used. Answers are cached per
    (scheme, host, port), so a client sending thousands of requests reads none of it again.
    """

    def __init__(self, proxies: Mapping[str, str], trust_env: bool = True) -> None:
        self.proxies = {k: v for k, v in proxies.items() if v} if trust_env else {}
        self.trust_env = trust_env
        self._cache: dict[tuple[str, str], tuple[dict[str, str], AuthBase | None]] = {}
        self._lock = threading.Lock()

    def for_url(self, url: str) -> tuple[dict[str, str], AuthBase | None]:
        """(proxies for requests' ``send``, netrc auth or None) for the origin of ``url``."""
        parts = urlsplit(url)
        key = (parts.scheme, parts.netloc)
        found = self._cache.get(key)
        if found is None:
            found = (self._proxies_for(parts.scheme, parts.hostname or "", parts.port), self._netrc(url))
            with self._lock:
                self._cache[key] = found
        return found

    def _proxies_for(self, scheme: str, host: str, port: int | None) -> dict[str, str]:
        if not self.proxies or bypasses_proxy(host, port, self.proxies.get("no", "")):
            return {}
        proxy = self.proxies.get(scheme) or self.proxies.get("all")
        return {scheme: proxy} if proxy else {}

    def _netrc(self, url: str) -> AuthBase | None:
        if not self.trust_env:
            return None
        credentials = get_netrc_auth(url)
        return requests.auth.HTTPBasicAuth(*credentials) if credentials else None


def build_session(
    retries: int,
    backoff_factor: float,
    auth: requests.auth.AuthBase | None = None,
    headers: Mapping[str, str] | None = None,
) -> requests.Session:
    """A session that never reads the environment itself (see :class:`OriginEnvironment`)."""
    session = requests.Session()
    session.trust_env = False
    adapter = IdempotencyRoutingAdapter(retries, backoff_factor)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.auth = auth
    session.headers.update(
        {
            "Accept": "application/fhir+json",
            "User-Agent": "fhircare/0.1",
            **dict(headers or {}),
        }
    )
    return session
