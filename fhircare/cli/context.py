"""What every CLI command shares: settings, a client, and the embedded server when no base was given."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import click

from ..fhir import FhirClient
from ..fhir.auth import BearerAuth
from ..settings import Settings


@dataclass
class Context:
    settings: Settings
    base_given: bool = False
    server: Any = field(default=None)

    def client(self, url: str | None = None) -> FhirClient:
        base = url or self.settings.base_url
        auth = BearerAuth(self.settings.bearer_token) if self.settings.bearer_token else None
        return FhirClient.from_settings(self.settings, auth=auth, base_url=base)

    @contextmanager
    def server_or_base(self) -> Iterator[FhirClient]:
        """A client for --base / FHIRCARE_BASE_URL, or for an embedded server started for this command."""
        if self.base_given:
            with self.client() as client:
                yield client
            return
        from ..server import EmbeddedServer

        with EmbeddedServer() as server:
            self.server = server
            click.echo(f"Embedded FHIR server at {server.base_url} (started in {server.started_in:.2f} s)")
            with self.client(server.base_url) as client:
                yield client

    def maybe_keep_running(self, keep_running: bool) -> None:
        if keep_running and self.server is not None:
            click.echo(f"Server still running at {self.server.base_url}; Ctrl+C to stop.")
            try:
                while True:
                    time.sleep(1)
            except KeyboardInterrupt:
                pass


pass_context = click.make_pass_decorator(Context)
