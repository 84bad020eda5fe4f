"""FhirClient: read, search, create, update, delete, transaction and batch against one FHIR base URL."""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

import requests
from requests.auth import AuthBase

from ..errors import FhirServerError, PartialWrite, TransientError, UnresolvedStoredReference
from ..settings import Settings, default_cache_dir, environment_proxies
from .behaviour import (
    BehaviourStore,
    ServerBehaviour,
    probe_conditional_references,
    probe_include,
)
from .capabilities import Capabilities
from .outcome import error_for, json_body
from .search import PagingLimits, SearchSet
from .session import OriginEnvironment, build_session, mark_idempotent
from .transaction import check_answer

log = logging.getLogger("fhircare.fhir")

FHIR_JSON = "application/fhir+json"
Params = Mapping[str, Any] | Iterable[tuple[str, Any]]


def etag_version(etag: str | None) -> str | None:
    """``W/"3"`` -> ``3``."""
    if not etag:
        return None
    return etag.strip().removeprefix("W/").strip('"') or None


def weak_etag(version: str | int) -> str:
    return f'W/"{version}"'


def is_idempotent_bundle(bundle: Mapping[str, Any]) -> bool:
    """A transaction is safe to re-send when no entry can create a second copy of anything."""
    for entry in bundle.get("entry") or []:
        request = entry.get("request") or {}
        method = str(request.get("method", "")).upper()
        if method == "POST" and not request.get("ifNoneExist"):
            return False
        if method == "PATCH" and not request.get("ifMatch"):
            return False
    return True


class KnownReferences:
    """A bounded, thread-safe set of references known to exist (least recently added dropped first)."""

    def __init__(self, limit: int = 10_000) -> None:
        self.limit = limit
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def __contains__(self, reference: object) -> bool:
        with self._lock:
            return reference in self._seen

    def add(self, references: Iterable[str]) -> None:
        with self._lock:
            for reference in references:
                self._seen[reference] = None
                self._seen.move_to_end(reference)
            while len(self._seen) > self.limit:
                self._seen.popitem(last=False)

    def discard(self, reference: str) -> None:
        with self._lock:
            self._seen.pop(reference, None)


class FhirClient:
    """A client for one FHIR R4 server.

    One ``requests.Session`` carries timeouts, retries (urllib3 ``Retry``) and an auth plugin.
    Every non-2xx answer becomes one exception of :mod:`fhircare.errors`.
    """

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
    ) -> None:
        """``trust_env`` (as in requests): use the environment's proxy variables and ``~/.netrc``;
        ``proxies`` (``{"https": url, "no": "host,..."}``, see
        :func:`~fhircare.fhir.session.environment_proxies`) replaces the proxy variables, which are
        otherwise read once, here. Either way nothing is looked up again per request.
        ``max_page_size``: the largest ``_count`` the server allows, when known (else learned)."""
        self.base_url = base_url.rstrip("/")
        #: where what this server was seen to do is remembered (the user's cache directory by default)
        self.behaviour_store = (
            behaviour_store if behaviour_store is not None else BehaviourStore(default_cache_dir())
        )
        self._behaviour: ServerBehaviour | None = None
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

    @classmethod
    def from_settings(
        cls, settings: Settings, auth: AuthBase | None = None, base_url: str | None = None
    ) -> FhirClient:
        """A client configured by :class:`~fhircare.settings.Settings` (timeouts, retries, proxies,
        ``trust_env``) for ``base_url`` (default: the settings' base URL)."""
        return cls(
            base_url or settings.base_url,
            auth=auth,
            timeout=(settings.timeout_connect, settings.timeout_read),
            retries=settings.retries,
            backoff_factor=settings.backoff_factor,
            trust_env=settings.trust_env,
            proxies=None if settings.proxies is None else dict(settings.proxies),
            max_page_size=settings.max_page_size,
        )

    # ---- plumbing -----------------------------------------------------------------------

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
        send_headers = dict(headers or {})
        if json is not None:
            send_headers.setdefault("Content-Type", FHIR_JSON)
        proxies, netrc = self.environment.for_url(url)
        prepared = self.session.prepare_request(
            requests.Request(
                method,
                url,
                params=params,
                json=json,
                headers=send_headers,
                auth=netrc if self.session.auth is None else None,
            )
        )
        if idempotent:
            mark_idempotent(prepared)
        with self._count_lock:
            self.request_count += 1
        started = time.perf_counter()
        try:
            response = self.session.send(
                prepared, timeout=self.timeout, allow_redirects=False, stream=stream, proxies=proxies
            )
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

    # ---- capability discovery ----------------------------------------------------------

    def capabilities(self, refresh: bool = False) -> Capabilities:
        """The server's CapabilityStatement (``/metadata``), fetched once and cached."""
        if self._capabilities is None or refresh:
            statement = self._resource(self.request("GET", "metadata"), "CapabilityStatement")
            self._capabilities = Capabilities(statement)
        return self._capabilities

    @property
    def behaviour(self) -> ServerBehaviour:
        """What this server was seen to do (learned by probes and answers, kept across processes)."""
        if self._behaviour is None:
            self._behaviour = self.behaviour_store.load(self.base_url)
        return self._behaviour

    def learn(self, **changes: Any) -> None:
        """Record what the server was seen to do (``atomic_transactions=False``, ...) and keep it."""
        behaviour = self.behaviour
        if all(getattr(behaviour, k) == v for k, v in changes.items()):
            return
        for key, value in changes.items():
            setattr(behaviour, key, value)
        log.info("learned server behaviour", extra={"learned": sorted(changes)})
        self.behaviour_store.save(self.base_url, behaviour)

    def resolves_conditional_references(self) -> bool:
        """Whether the server resolves ``Type?query`` references inside a transaction (probed once)."""
        known = self.behaviour.conditional_references
        if known is None:
            known = probe_conditional_references(self)
            self.learn(conditional_references=known)
        return known

    def include_works(self, resource_type: str, spec: str) -> bool:
        """Whether ``_include=<spec>`` on ``resource_type`` brings included resources back.

        A declaration is not enough (some servers omit ``searchInclude`` yet include, others ignore
        ``_include``): one ``_count=1`` search shows it, remembered per server once it could tell.
        """
        key = f"{resource_type}:{spec}"
        known = self.behaviour.include.get(key)
        if known is not None:
            return known
        try:
            seen = probe_include(self, resource_type, spec)
        except FhirServerError:
            seen = False
        if seen is None:  # nothing on the server can tell yet: trust the declaration for this client
            declared = self.capabilities().supports_include(resource_type, spec)
            self.behaviour.include[key] = declared  # in memory only: a later client probes again
            return declared
        self.learn(include={**self.behaviour.include, key: seen})
        return seen

    def smart_configuration(self) -> dict[str, Any] | None:
        """``.well-known/smart-configuration``, or None when the server does not publish one."""
        try:
            response = self.request(
                "GET", ".well-known/smart-configuration", headers={"Accept": "application/json"}
            )
        except FhirServerError as exc:
            if exc.http_status in (400, 401, 403, 404, 405, 501):
                return None
            raise
        body = json_body(response)
        return body if isinstance(body, dict) else None

    # ---- instance interactions ---------------------------------------------------------

    def read(self, resource_type: str, resource_id: str) -> dict[str, Any]:
        return self._resource(self.request("GET", f"{resource_type}/{resource_id}"), resource_type)

    def read_reference(self, reference: str) -> dict[str, Any]:
        """Read ``Type/id`` (or ``Type/id/_history/v``)."""
        parts = reference.split("/")
        if len(parts) == 4 and parts[2] == "_history":
            return self.vread(parts[0], parts[1], parts[3])
        if len(parts) != 2:
            raise ValueError(f"not a relative literal reference: {reference!r}")
        return self.read(parts[0], parts[1])

    def vread(self, resource_type: str, resource_id: str, version: str) -> dict[str, Any]:
        return self._resource(
            self.request("GET", f"{resource_type}/{resource_id}/_history/{version}"), resource_type
        )

    def create(
        self,
        resource: Mapping[str, Any],
        if_none_exist: str | None = None,
    ) -> dict[str, Any]:
        """POST a resource; with ``if_none_exist`` the create is conditional (and safe to retry)."""
        rtype = str(resource["resourceType"])
        headers = {"Prefer": "return=representation"}
        if if_none_exist:
            headers["If-None-Exist"] = if_none_exist
        response = self.request(
            "POST", rtype, json=dict(resource), headers=headers, idempotent=bool(if_none_exist)
        )
        return self._written(response, rtype)

    def update(self, resource: Mapping[str, Any], if_match: str | int | None = None) -> dict[str, Any]:
        """PUT a resource by id; ``if_match`` is a version id (``3``) or an ETag (``W/"3"``)."""
        rtype, rid = str(resource["resourceType"]), resource.get("id")
        if not rid:
            raise ValueError("update needs a resource with an id")
        headers = {"Prefer": "return=representation"}
        if if_match is not None:
            version = str(if_match)
            headers["If-Match"] = version if version.startswith("W/") else weak_etag(version)
        response = self.request("PUT", f"{rtype}/{rid}", json=dict(resource), headers=headers)
        return self._written(response, rtype)

    def delete(self, resource_type: str, resource_id: str) -> None:
        self.known_references.discard(f"{resource_type}/{resource_id}")
        self.request("DELETE", f"{resource_type}/{resource_id}")

    def _written(self, response: requests.Response, rtype: str) -> dict[str, Any]:
        if response.content:
            return self._resource(response, rtype)
        location = response.headers.get("Location") or response.headers.get("Content-Location")
        if not location:
            raise FhirServerError(f"{rtype} written but the server sent neither a body nor a Location")
        return self.read_reference(_relative(location, self.base_url).split("/_history")[0])

    # ---- search ------------------------------------------------------------------------

    def search(self, resource_type: str, params: Params | None = None) -> SearchSet:
        """A lazy search: pages are fetched only as they are consumed, following ``next`` links."""
        return SearchSet(self, resource_type, _pairs(params))

    # ---- bundles -----------------------------------------------------------------------

    def transaction(self, bundle: Mapping[str, Any], names: Sequence[str] | None = None) -> dict[str, Any]:
        """POST a transaction Bundle (all or nothing). Retried only when every entry is conditional.

        The answer is checked: a failed entry inside a 200 (a server that processed the transaction
        entry by entry) raises :class:`~fhircare.errors.PartialWrite` (or, when nothing was written,
        the error of its status); a stored reference that still holds ``?`` raises
        :class:`~fhircare.errors.UnresolvedStoredReference`. ``names`` label the entries in errors.
        """
        answer = self._bundle(bundle, "transaction")
        labels = (
            list(names) if names is not None else [f"#{i}" for i in range(len(answer.get("entry") or []))]
        )
        try:
            check_answer(labels, answer)
        except UnresolvedStoredReference:
            self.learn(conditional_references=False)
            raise
        except PartialWrite:
            self.learn(atomic_transactions=False)
            raise
        return answer

    def batch(self, bundle: Mapping[str, Any]) -> dict[str, Any]:
        """POST a batch Bundle; each entry succeeds or fails on its own."""
        return self._bundle(bundle, "batch")

    def read_batch(self, references: Iterable[str]) -> list[dict[str, Any]]:
        """Read ``Type/id`` references in one batch (no request for none): the answer's entries in the
        same order, each with its status and, when found, the resource."""
        wanted = list(references)
        if not wanted:
            return []
        entries = [{"request": {"method": "GET", "url": reference}} for reference in wanted]
        return list(
            self.batch({"resourceType": "Bundle", "type": "batch", "entry": entries}).get("entry") or []
        )

    def read_found(self, references: Iterable[str]) -> dict[str, dict[str, Any]]:
        """``Type/id`` -> resource for the references that exist, read in one batch."""
        found = {}
        for entry in self.read_batch(references):
            resource = entry.get("resource")
            if (
                isinstance(resource, dict)
                and resource.get("id")
                and resource.get("resourceType") != "OperationOutcome"
            ):
                found[f"{resource['resourceType']}/{resource['id']}"] = resource
        return found

    def _bundle(self, bundle: Mapping[str, Any], kind: str) -> dict[str, Any]:
        body = dict(bundle)
        body.setdefault("resourceType", "Bundle")
        body["type"] = kind
        idempotent = kind == "batch" and all(
            str((e.get("request") or {}).get("method", "")).upper() == "GET" for e in body.get("entry") or []
        )
        idempotent = idempotent or (kind == "transaction" and is_idempotent_bundle(body))
        response = self.request("POST", "", json=body, idempotent=idempotent)
        answer = self._resource(response, "Bundle")
        expected = f"{kind}-response"
        if answer.get("type") != expected:
            raise FhirServerError(f"expected a {expected} Bundle, got type {answer.get('type')!r}")
        if len(answer.get("entry") or []) != len(body.get("entry") or []):
            raise FhirServerError(
                f"{kind} answered {len(answer.get('entry') or [])} entries for {len(body.get('entry') or [])} sent"
            )
        return answer

    # ---- large downloads ---------------------------------------------------------------

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

    def __enter__(self) -> FhirClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"FhirClient({self.base_url!r})"


def _pairs(params: Params | None) -> list[tuple[str, str]]:
    if params is None:
        return []
    items = params.items() if isinstance(params, Mapping) else params
    out: list[tuple[str, str]] = []
    for key, value in items:
        if isinstance(value, (list, tuple)):
            out.extend((key, str(v)) for v in value)
        elif value is not None:
            out.append((key, str(value)))
    return out


def _relative(location: str, base: str) -> str:
    return location[len(base) :].lstrip("/") if location.startswith(base) else location


def _resource_type(url: str, base: str) -> str:
    rest = _relative(url.split("?", 1)[0], base)
    return rest.split("/", 1)[0] or "(system)"


def _reason(exc: Exception) -> str:
    text = str(exc)
    for hint in ("Connection refused", "Name or service not known", "reset", "timed out", "Max retries"):
        if hint in text:
            return hint.lower()
    return exc.__class__.__name__
