"""Batches and transactions on the wire: one POST of a Bundle, its answer checked for shape, and
throttled entries in it waited out and sent again (:mod:`fhircare.fhir.throttle`). ``FhirClient``
builds its batch reads and its checked transactions on top."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import requests

from ..errors import FhirServerError
from .entries import ACCESS, MISSING, entry_error, failure_kind
from .ratelimit import is_throttled, status_code
from .throttle import Throttle, install
from .transaction import is_idempotent_bundle
from .transport import FhirTransport


class BundleTransport(FhirTransport):
    """A transport that sends batches and transactions, and waits out a server's throttling within
    a budget, pacing its requests (``throttle``: :class:`~fhircare.fhir.throttle.Throttle`; a client
    of its own by default: a 60 s budget, no pacing but what the server's ``RateLimit`` headers ask)."""

    def __init__(self, base_url: str, *args: Any, throttle: Throttle | None = None, **kwargs: Any) -> None:
        super().__init__(base_url, *args, **kwargs)
        self.throttle = throttle or Throttle()
        install(self.session, self.throttle)

    def batch(self, bundle: Mapping[str, Any]) -> dict[str, Any]:
        """POST a batch Bundle; each entry succeeds or fails on its own (throttled entries are waited
        out and sent again: :meth:`~fhircare.fhir.throttle.Throttle.settle`)."""
        return self._bundle(bundle, "batch")

    def read_batch(self, urls: Iterable[str]) -> list[dict[str, Any]]:
        """GET each relative URL (``Type/id`` reads, ``Type?query`` searches, ``Type/id/_history``) in
        one batch (no request for none): the answer's entries in the same order, each with its status
        and, when there is one, the resource (a searchset for a search)."""
        wanted = list(urls)
        if not wanted:
            return []
        entries = [{"request": {"method": "GET", "url": url}} for url in wanted]
        return list(
            self.batch({"resourceType": "Bundle", "type": "batch", "entry": entries}).get("entry") or []
        )

    def read_found(
        self, references: Iterable[str], forbidden_hidden: bool = True
    ) -> dict[str, dict[str, Any]]:
        """``Type/id`` -> resource for the references that exist, read in one batch.

        A 404/410 entry means "not there"; so does a 403 while ``forbidden_hidden`` (a view: what these
        credentials may not see is not shown; the sidecar's patient compartment answers another
        patient's resource so). Any other failed entry (401, throttled past the budget, the server
        failed; a 403 too with ``forbidden_hidden=False``) raises the error it stands for
        (:func:`~fhircare.fhir.entries.entry_error`), so no caller takes a failure for an absence (a
        sync would skip a partner's change and move past it)."""
        wanted = list(references)
        found = {}
        for reference, entry in zip(wanted, self.read_batch(wanted), strict=False):
            kind = failure_kind(entry)
            hidden = forbidden_hidden and kind == ACCESS and status_code(entry) == 403
            if kind not in (None, MISSING) and not hidden:
                raise entry_error(f"reading {reference.split('/')[0].split('?')[0]}", entry)
            resource = entry.get("resource")
            if (
                isinstance(resource, dict)
                and resource.get("id")
                and resource.get("resourceType") != "OperationOutcome"
            ):
                found[f"{resource['resourceType']}/{resource['id']}"] = resource
        return found

    def _bundle(self, bundle: Mapping[str, Any], kind: str) -> dict[str, Any]:
        return self._bundle_sent(bundle, kind)[0]

    def _bundle_sent(self, bundle: Mapping[str, Any], kind: str) -> tuple[dict[str, Any], bytes]:
        """The answer to a batch or transaction (throttled entries waited out and sent again), and
        the body that was sent."""
        body = dict(bundle)
        body.setdefault("resourceType", "Bundle")
        body["type"] = kind
        answer, response = self._post_bundle(body)
        if any(is_throttled(entry) for entry in answer.get("entry") or []):
            answer = self.throttle.settle(
                kind, body, answer, lambda again: self._post_bundle(again)[0], self._saw_entry_by_entry
            )
        sent = response.request.body
        return answer, sent if isinstance(sent, bytes) else str(sent or "").encode("utf-8")

    def _post_bundle(self, body: dict[str, Any]) -> tuple[dict[str, Any], requests.Response]:
        kind = str(body["type"])
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
        return answer, response

    def _saw_entry_by_entry(self) -> None:
        """A transaction answer showed entries committed one by one (learned by the client)."""
