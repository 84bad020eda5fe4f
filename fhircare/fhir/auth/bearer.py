"""Static or refreshable bearer token."""

from __future__ import annotations

from collections.abc import Callable

import requests
from requests.auth import AuthBase


class BearerAuth(AuthBase):
    """Adds ``Authorization: Bearer <token>``; ``token`` may be a string or a callable returning one."""

    def __init__(self, token: str | Callable[[], str]) -> None:
        self._token = token

    def token(self) -> str:
        return self._token() if callable(self._token) else self._token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.token()}"
        return request

    def __repr__(self) -> str:  # never show the token
        return "BearerAuth(<redacted>)"
