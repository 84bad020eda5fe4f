"""Shared fixtures: one embedded FHIR server per test session, clients, and request counting."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings

from fhircare.fhir import FhirClient
from fhircare.server import EmbeddedServer

# CI must not turn red on a random draw nobody can replay: the default profile is derandomized (the same
# examples every run). `HYPOTHESIS_PROFILE=explore pytest ...` draws fresh examples when hunting bugs.
hypothesis_settings.register_profile("fhircare", derandomize=True)
hypothesis_settings.register_profile("explore", derandomize=False)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "fhircare"))

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "corpus"


@pytest.fixture(scope="session")
def fhir_server() -> Iterator[EmbeddedServer]:
    with EmbeddedServer() as server:
        yield server


@pytest.fixture()
def client(fhir_server: EmbeddedServer) -> Iterator[FhirClient]:
    with FhirClient(fhir_server.base_url, retries=2, backoff_factor=0.05) as c:
        yield c


@pytest.fixture()
def server_requests(fhir_server: EmbeddedServer):
    """Counts the requests the server receives from now on: ``server_requests()`` -> int."""
    counter = fhir_server.counter
    assert counter is not None
    start = counter.count
    return lambda: counter.count - start


@pytest.fixture()
def uid() -> str:
    """A value unique to this test, for identifiers that must not collide with other tests' data."""
    return uuid.uuid4().hex[:12]
