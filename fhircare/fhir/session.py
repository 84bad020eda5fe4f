"""The one HTTP path: a ``requests.Session`` with retries that know which requests are safe to repeat.

urllib3's ``Retry`` decides by HTTP method only, but for FHIR a POST is safe to repeat when it is a
conditional create or a transaction whose entries are all conditional. The client marks such
requests, and :class:`IdempotencyRoutingAdapter` sends them through a pool whose ``Retry`` also
covers POST, while every other POST goes through a pool that never re-sends it once it was sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

RETRY_STATUSES = frozenset({429, 502, 503, 504})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
IDEMPOTENT_MARK = "_fhircare_idempotent"


def make_retry(total: int, backoff_factor: float, allow_post: bool) -> Retry:
    """A Retry for connect errors, read errors on safe methods, and 429/502/503/504 with Retry-After."""
    methods = SAFE_METHODS | {"POST"} if allow_post else SAFE_METHODS
    return Retry(
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


def build_session(
    retries: int,
    backoff_factor: float,
    auth: requests.auth.AuthBase | None = None,
    headers: Mapping[str, str] | None = None,
) -> requests.Session:
    session = requests.Session()
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
