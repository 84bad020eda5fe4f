"""Fixtures the integration tests share (the session-wide ones are in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fhircare.settings import Settings
from tests.integration.sidecar_harness import Sidecar


@pytest.fixture(scope="module")
def dev(fhir_server) -> Iterator[Sidecar]:
    """The sidecar in development mode on the test's FHIR server, one per module (a module that needs
    a fresh sidecar for every test defines its own ``dev``)."""
    with Sidecar(Settings(base_url=fhir_server.base_url)) as running:
        yield running
