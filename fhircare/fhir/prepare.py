"""Preparing and sending one request the way ``requests.Session`` would, without its per-request
merging of settings a FHIR client never varies (it cost more than the rest of the request's work)."""

from __future__ import annotations

import json as json_module
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

import requests
from requests.auth import AuthBase
from requests.cookies import RequestsCookieJar, extract_cookies_to_jar
from requests.hooks import default_hooks, dispatch_hook
from requests.structures import CaseInsensitiveDict
from requests.utils import check_header_validity

from ..errors import FhirServerError

FHIR_JSON = "application/fhir+json"
Params = Mapping[str, Any] | Iterable[tuple[str, Any]]


def prepare(
    session: requests.Session,
    method: str,
    url: str,
    params: Params | None,
    body: Any,
    headers: Mapping[str, str] | None,
    netrc: AuthBase | None,
) -> requests.PreparedRequest:
    """The request as ``Session.prepare_request`` would make it, without its per-request merging
    of settings this client never varies (it cost more than the rest of the request's own work):
    the session's headers, cookies and auth (or the origin's netrc credentials) apply."""
    prepared = requests.PreparedRequest()
    prepared.method = method.upper()
    if params:
        prepared.prepare_url(url, params)
    else:
        prepared.url = _prepared_url(url)
    prepared.headers = CaseInsensitiveDict(session.headers)  # type: ignore[arg-type]
    for name, value in (headers or {}).items():
        check_header_validity((name, value))  # no line break smuggles a header in
        prepared.headers[name] = value
    if body is not None:
        prepared.body = json_module.dumps(body, allow_nan=False).encode("utf-8")
        if not headers or "Content-Type" not in CaseInsensitiveDict(headers):
            prepared.headers["Content-Type"] = FHIR_JSON
        prepared.headers["Content-Length"] = str(len(prepared.body))
    elif prepared.method not in ("GET", "HEAD"):
        prepared.headers["Content-Length"] = "0"
    if session.cookies:
        prepared.prepare_cookies(session.cookies.copy())
    else:  # a jar of its own, as requests gives it: an auth answering a challenge adds to it
        prepared._cookies = RequestsCookieJar()  # type: ignore[attr-defined]
    # the hooks first: an auth that answers a challenge (Digest, NTLM) registers its own
    prepared.hooks = default_hooks()
    prepared.prepare_hooks({"response": list(session.hooks["response"])})
    prepared.prepare_auth(session.auth or netrc, url)
    return prepared


def send(
    session: requests.Session,
    prepared: requests.PreparedRequest,
    stream: bool,
    proxies: dict[str, str],
    timeout: tuple[float, float],
    limit: int | None = None,
) -> requests.Response:
    """``Session.send`` for a client that follows no redirects: the adapter's send, the cookies
    the answer sets kept, and the response hooks (the sidecar's compartment filter) applied.
    ``limit``: the most bytes of body read (streamed; beyond it :class:`AnswerTooLarge`)."""
    adapter = session.get_adapter(str(prepared.url))
    settings: dict[str, Any] = {
        "stream": stream or limit is not None,
        "timeout": timeout,
        "verify": session.verify if session.verify is not None else True,
        "cert": session.cert,
        "proxies": proxies,
    }
    response = adapter.send(prepared, **settings)
    # a hook that sends again (an auth answering a challenge) sends with the same settings
    hooked: requests.Response = dispatch_hook("response", prepared.hooks, response, **settings)
    for answer in (*hooked.history, hooked):
        if "set-cookie" in answer.headers:
            extract_cookies_to_jar(session.cookies, answer.request, answer.raw)
    if limit is not None and not stream:
        read_bounded(hooked, limit)
    elif not stream:
        hooked.content  # noqa: B018 - read now, as Session.send does, inside the error handling
    return hooked


class AnswerTooLarge(FhirServerError):
    """A server's answer larger than the client accepts: refused unread (no more than the limit held)."""


def read_bounded(response: requests.Response, limit: int) -> None:
    """Read the body (decoded) in chunks, refusing it once it passes ``limit`` bytes - at once when its
    ``Content-Length`` says so - instead of holding whatever a server sends."""
    declared = response.headers.get("Content-Length", "")
    chunks: list[bytes] = []
    size = int(declared) if declared.isdigit() else 0
    if size <= limit:
        size = 0
        for chunk in response.iter_content(64 * 1024):
            size += len(chunk)
            if size > limit:
                break
            chunks.append(chunk)
    if size > limit:
        response.close()
        raise AnswerTooLarge(f"{response.request.method} answered with more than {limit} bytes: refused")
    response._content = b"".join(chunks)


@lru_cache(maxsize=4096)
def _prepared_url(url: str) -> str:
    """A URL as requests prepares it (IDNA host, quoting), worked out once per URL."""
    prepared = requests.PreparedRequest()
    prepared.prepare_url(url, None)
    return str(prepared.url)
