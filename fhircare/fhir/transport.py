"""The transport of a FHIR client: one ``requests.Session`` (timeouts, retries, auth), the request and
its error translation, and paging links. ``FhirClient`` adds FHIR's interactions and its server
policy on top."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any, Self
from urllib.parse import urljoin, urlsplit, urlunsplit

import requests
from requests.auth import AuthBase

from ..errors import FhirServerError, TransientError
from ..settings import default_cache_dir, environment_proxies
from .behaviour import BehaviourStore
from .capabilities import Capabilities
from .known import KnownReferences
from .outcome import error_for, json_body
from .paging import PagingLimits
from .prepare import FHIR_JSON, Params, prepare, send
from .session import OriginEnvironment, build_session, mark_idempotent
from .versions import etag_version, weak_etag

__all__ = ["FHIR_JSON", "FhirTransport", "Params", "etag_version", "relative_to_base", "weak_etag"]

log = logging.getLogger("fhircare.fhir")


class FhirTransport:
    """One FHIR base URL over one ``requests.Session``; every non-2xx answer becomes one exception of
    :mod:`fhircare.errors`."""

    #: the largest answer body read (None: any); a larger one is refused unread (``AnswerTooLarge``)
    max_answer_bytes: int | None = None

    def __init__(
        self,
        base_url: str,
        auth: AuthBase | None = None,
        timeout: tuple[float, float] = (3.05, 30.0),
        retries: int = 3,
        backoff_factor: float = 0.2,
        headers: Mapping[str, str] | None = None,
        behaviour_store: BehaviourStore | None = None,
        trust_env: bool = True,
        proxies: Mapping[str, str] | None = None,
        max_page_size: int | None = None,
        scoped: bool = False,
        server_profile: str | None = None,
    ) -> None:
        """``trust_env`` (as in requests): use the environment's proxy variables and ``~/.netrc``;
        ``proxies`` (``{"https": url, "no": "host,..."}``, see
        :func:`~fhircare.fhir.session.environment_proxies`) replaces the proxy variables, which are
        otherwise read once, here. Either way nothing is looked up again per request.
        ``max_page_size``: the largest ``_count`` the server allows, when known (else learned).
        ``scoped``: the credentials may see only part of the server (a SMART user or patient token,
        a caller's own token passed through): what this client cannot see is never learned as what
        the server holds (see :meth:`FhirClient.holds_legacy_stamps`). ``server_profile``: a name that
        keys what is learned about the server instead of the identity the credentials carry (see
        :mod:`fhircare.fhir.identity`)."""
        self.base_url = base_url.rstrip("/")
        self.scoped = scoped
        self.server_profile = server_profile
        #: where what this server was seen to do is remembered (the user's cache directory by default)
        self.behaviour_store = (
            behaviour_store if behaviour_store is not None else BehaviourStore(default_cache_dir())
        )
        self._rebase_logged = False
        self.timeout = timeout
        self.session = build_session(retries, backoff_factor, auth, headers)
        self.environment = OriginEnvironment(
            environment_proxies() if proxies is None and trust_env else dict(proxies or {}), trust_env
        )
        self._capabilities: Capabilities | None = None
        #: page sizes and paging parameters for views (declared, or learned from answers)
        self.paging = PagingLimits(declared_max=max_page_size)
        self._count_lock = threading.Lock()
        self.request_count = 0
        #: ``Type/id`` references the workflows have seen exist through this client (read, checked or
        #: written), so a coordinator's next run does not check them again; bounded, oldest dropped
        self.known_references = KnownReferences()

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}" if path else self.base_url

    def follow_link(self, url: str) -> str | None:
        """The URL to request for a server's paging link, or None when it must not be followed.

        Relative links are joined to the base. An absolute link under the base is followed as is. A
        link on another origin whose path continues the base path (a server behind a reverse proxy
        naming its inner address) is re-based onto the configured base, so neither the request nor
        its credentials go to the other origin. Anything else is refused by the caller.
        """
        parts = urlsplit(url)
        if not parts.scheme and not parts.netloc:
            return urljoin(self.base_url + "/", url)
        if self.owns(url):
            return url
        base = urlsplit(self.base_url)
        if (parts.path.rstrip("/") + "/").startswith(base.path.rstrip("/") + "/"):
            if not self._rebase_logged:
                self._rebase_logged = True
                log.info("re-basing the server's paging links onto the configured base (reverse proxy?)")
            return urlunsplit((base.scheme, base.netloc, parts.path, parts.query, ""))
        return None

    def owns(self, url: str) -> bool:
        """True when an absolute URL lies under this client's base (so following it is safe)."""
        base, other = urlsplit(self.base_url), urlsplit(url)
        return (other.scheme, other.netloc) == (base.scheme, base.netloc) and (
            other.path.rstrip("/") + "/"
        ).startswith(base.path.rstrip("/") + "/")

    def request(
        self,
        method: str,
        path_or_url: str,
        *,
        params: Params | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool = False,
        ok_statuses: tuple[int, ...] = (),
        stream: bool = False,
    ) -> requests.Response:
        """Send one request (retried per the session's policy) and raise on a non-2xx answer."""
        url = path_or_url if path_or_url.startswith(("http://", "https://")) else self.url(path_or_url)
        proxies, netrc = self.environment.for_url(url)
        prepared = prepare(self.session, method, url, params, json, headers, netrc)
        if idempotent:
            mark_idempotent(prepared)
        with self._count_lock:
            self.request_count += 1
        started = time.perf_counter()
        try:
            response = send(self.session, prepared, stream, proxies, self.timeout, self.max_answer_bytes)
        except requests.exceptions.RetryError as exc:
            raise TransientError(
                f"{method} {url.split('?')[0]}: retries exhausted ({exc.__class__.__name__})"
            ) from None
        except requests.exceptions.Timeout:
            raise TransientError(f"{method} {url.split('?')[0]}: timed out after {self.timeout} s") from None
        except requests.exceptions.ConnectionError as exc:
            raise TransientError(
                f"{method} {url.split('?')[0]}: connection failed ({_reason(exc)})"
            ) from None
        except requests.exceptions.RequestException as exc:
            raise FhirServerError(f"{method} {url.split('?')[0]}: {exc.__class__.__name__}") from None
        elapsed_ms = (time.perf_counter() - started) * 1000
        if log.isEnabledFor(logging.DEBUG):  # the record's fields cost more than the check
            log.debug(
                "fhir request",
                extra={
                    "method": method,
                    "resource_type": _resource_type(url, self.base_url),
                    "status": response.status_code,
                    "elapsed_ms": round(elapsed_ms, 1),
                },
            )
        if response.status_code >= 400 or (
            response.status_code >= 300 and response.status_code not in ok_statuses
        ):
            raise error_for(response)
        return response

    def _resource(self, response: requests.Response, expect_type: str | None = None) -> dict[str, Any]:
        body = json_body(response)
        if not isinstance(body, dict) or "resourceType" not in body:
            raise FhirServerError(f"{response.request.method} answered without a FHIR resource")
        if expect_type and body["resourceType"] != expect_type:
            raise FhirServerError(
                f"expected a {expect_type} but the server answered with a {body['resourceType']}"
            )
        return body

    def stream_lines(self, url: str, headers: Mapping[str, str] | None = None) -> Iterator[bytes]:
        """GET a large body (a Bulk Data NDJSON file) and yield its non-empty lines as they arrive;
        only one chunk is held at a time."""
        response = self.request("GET", url, headers=headers, stream=True)
        try:
            for line in response.iter_lines(chunk_size=64 * 1024):
                if line:
                    yield line
        except requests.exceptions.RequestException as exc:
            raise TransientError(
                f"GET {url.split('?')[0]}: download interrupted ({exc.__class__.__name__})"
            ) from None
        finally:
            response.close()

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.base_url!r})"


def relative_to_base(location: str, base: str) -> str:
    return location[len(base) :].lstrip("/") if location.startswith(base) else location


def _resource_type(url: str, base: str) -> str:
    rest = relative_to_base(url.split("?", 1)[0], base)
    return rest.split("/", 1)[0] or "(system)"


def _reason(exc: Exception) -> str:
    text = str(exc)
    for hint in ("Connection refused", "Name or service not known", "reset", "timed out", "Max retries"):
        if hint in text:
            return hint.lower()
    return exc.__class__.__name__
