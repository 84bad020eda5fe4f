"""FhirClient: read, search, create, update, delete, transaction and batch against one FHIR base URL."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

import requests
from requests.auth import AuthBase

from ..errors import FhirServerError, PartialWrite, UnresolvedStoredReference
from ..settings import Settings
from .behaviour import ServerBehaviour, store_key
from .bundles import BundleTransport
from .capabilities import Capabilities
from .identity import identity_of
from .known import KnownReferences
from .outcome import json_body
from .pacing import shared_pacer
from .policy import ServerPolicy
from .search import SearchSet
from .throttle import Throttle
from .transaction import check_answer, is_idempotent_bundle
from .transport import Params, relative_to_base
from .versions import etag_version, weak_etag

log = logging.getLogger("fhircare.fhir")


__all__ = ["FhirClient", "KnownReferences", "Params", "etag_version", "is_idempotent_bundle", "weak_etag"]


#: a conditional reference in a request body as JSON (``"reference": "Type?..."``)
CONDITIONAL_REFERENCE = re.compile(rb'"reference":\s*"[A-Z][A-Za-z]*\?')

#: CapabilityStatements per base URL, shared by the process's clients for STATEMENT_TTL seconds: the
#: sidecar makes a client per request in some modes, and each would fetch /metadata again
STATEMENT_TTL = 300.0
_STATEMENTS: dict[str, tuple[float, Capabilities]] = {}


class FhirClient(BundleTransport):
    """A client for one FHIR R4 server.

    One ``requests.Session`` carries timeouts, retries (urllib3 ``Retry``) and an auth plugin.
    Every non-2xx answer becomes one exception of :mod:`fhircare.errors`. Batches and throttling:
    :class:`~fhircare.fhir.bundles.BundleTransport`.
    """

    _policy: ServerPolicy | None = None
    _policy_auth: object = None

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        auth: AuthBase | None = None,
        base_url: str | None = None,
        scoped: bool = False,
    ) -> FhirClient:
        """A client configured by :class:`~fhircare.settings.Settings` (timeouts, retries, proxies,
        ``trust_env``) for ``base_url`` (default: the settings' base URL); ``scoped``: see
        :class:`~fhircare.fhir.transport.FhirTransport`. Its pacer is the process's one for the
        server and identity (:func:`~fhircare.fhir.pacing.shared_pacer`): clients on several
        threads together keep under ``FHIRCARE_MAX_REQUESTS_PER_MINUTE``."""
        return cls(
            base_url or settings.base_url,
            auth=auth,
            timeout=(settings.timeout_connect, settings.timeout_read),
            retries=settings.retries,
            backoff_factor=settings.backoff_factor,
            trust_env=settings.trust_env,
            proxies=None if settings.proxies is None else dict(settings.proxies),
            max_page_size=settings.max_page_size,
            scoped=scoped,
            server_profile=settings.server_profile,
            throttle=Throttle(
                settings.throttle_budget,
                shared_pacer(
                    base_url or settings.base_url,
                    identity_of(auth, settings.server_profile),
                    settings.max_requests_per_minute,
                ),
            ),
        )

    def capabilities(self, refresh: bool = False) -> Capabilities:
        """The server's CapabilityStatement (``/metadata``), fetched once per process and base URL and
        kept ``STATEMENT_TTL`` seconds (``refresh`` fetches it again)."""
        if self._capabilities is None or refresh:
            kept = None if refresh else _STATEMENTS.get(self.base_url)
            if kept is not None and time.monotonic() - kept[0] < STATEMENT_TTL:
                self._capabilities = kept[1]
            else:
                statement = self._resource(self.request("GET", "metadata"), "CapabilityStatement")
                self._capabilities = Capabilities(statement)
                _STATEMENTS[self.base_url] = (time.monotonic(), self._capabilities)
        return self._capabilities

    @property
    def policy(self) -> ServerPolicy:
        """What this client does on its server, decided from what was learned for the identity it
        acts as (its credentials, or ``server_profile``), and learned through this client."""
        auth = self.session.auth
        if self._policy is None or self._policy_auth is not auth:
            identity = identity_of(auth, self.server_profile, self.behaviour_store.secret)
            key = store_key(self.base_url, identity)
            if self._policy is None or self._policy.key != key:
                self._policy = ServerPolicy(self, self.behaviour_store, key, scoped=self.scoped)
            self._policy_auth = auth
        return self._policy

    @property
    def behaviour(self) -> ServerBehaviour:
        """What this server was seen to do for this client's identity (kept across processes)."""
        return self.policy.behaviour

    def learn(self, **changes: Any) -> None:
        """Record what the server was seen to do (``atomic_transactions=False``, ...) and keep it."""
        self.policy.learn(**changes)

    def resolves_conditional_references(self) -> bool:
        """Whether the server resolves ``Type?query`` references inside a transaction (probed once)."""
        return self.policy.resolves_conditional_references()

    def holds_legacy_stamps(self) -> bool:
        """Whether the server holds runs an earlier release stamped ``urn:fhircare:request-id``
        (probed once, remembered): where it holds none, request-id searches name one system."""
        return self.policy.holds_legacy_stamps()

    def include_works(self, resource_type: str, spec: str) -> bool:
        """Whether ``_include=<spec>`` on ``resource_type`` brings included resources back.

        A declaration is not enough (some servers omit ``searchInclude`` yet include, others ignore
        ``_include``): one ``_count=10`` search shows it, remembered per server once it could tell.
        """
        return self.policy.include_works(
            resource_type, spec, lambda: self.capabilities().supports_include(resource_type, spec)
        )

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
        return self.read_reference(relative_to_base(location, self.base_url).split("/_history")[0])

    def search(self, resource_type: str, params: Params | None = None) -> SearchSet:
        """A lazy search: pages are fetched only as they are consumed, following ``next`` links."""
        return SearchSet(self, resource_type, _pairs(params))

    def _saw_entry_by_entry(self) -> None:
        self.policy.saw_partial_write()

    def transaction(
        self, bundle: Mapping[str, Any], names: Sequence[str] | None = None, checked: bool = True
    ) -> dict[str, Any]:
        """POST a transaction Bundle (all or nothing). Retried only when every entry is conditional.

        The answer is checked: a failed entry inside a 200 (a server that processed the transaction
        entry by entry) raises :class:`~fhircare.errors.PartialWrite` (or, when nothing was written,
        the error of its status); a stored reference that still holds ``?`` raises
        :class:`~fhircare.errors.UnresolvedStoredReference`. ``names`` label the entries in errors.
        ``checked=False`` returns a 200 answer as it is, its entries' failures for the caller to read
        (a probe telling a whole refusal from entries failed one by one).
        """
        answer, sent = self._bundle_sent(bundle, "transaction")
        if not checked:
            return answer
        labels = (
            list(names) if names is not None else [f"#{i}" for i in range(len(answer.get("entry") or []))]
        )
        try:
            # a stored '?' can only come from a conditional reference that was sent
            check_answer(labels, answer, stored_queries=CONDITIONAL_REFERENCE.search(sent) is not None)
        except UnresolvedStoredReference:
            self.learn(conditional_references=False)
            raise
        except PartialWrite:
            self.policy.saw_partial_write()
            raise
        return answer


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
