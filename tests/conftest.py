"""Shared fixtures: one embedded FHIR server per test session, clients, and request counting."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings as hypothesis_settings

from fhircare.fhir import FhirClient
from fhircare.server import EmbeddedServer
from tests.support.servers import new_server, wanted_servers

# CI must not turn red on a random draw nobody can replay: the default profile is derandomized (the same
# examples every run). `HYPOTHESIS_PROFILE=explore pytest ...` draws fresh examples when hunting bugs.
hypothesis_settings.register_profile("fhircare", derandomize=True)
hypothesis_settings.register_profile("explore", derandomize=False)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "fhircare"))

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "corpus"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "embedded_only(reason): the test is about the embedded server itself")
    # What fhircare learns about each server is kept in a cache directory; the suite's own, shared by
    # the CLI processes it starts, and never the developer's.
    if "FHIRCARE_CACHE_DIR" not in os.environ:
        os.environ["FHIRCARE_CACHE_DIR"] = tempfile.mkdtemp(prefix="fhircare-test-cache-")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A test marked ``embedded_only`` (it is about the embedded server itself) runs on that server only."""
    kept, dropped = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        on_other = callspec is not None and callspec.params.get("fhir_server", "embedded") != "embedded"
        (dropped if on_other and item.get_closest_marker("embedded_only") else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.fixture(scope="session", params=wanted_servers())
def fhir_server(request: pytest.FixtureRequest) -> Iterator[Any]:
    """A real FHIR server for the session, once per implementation in ``SERVERS``."""
    with new_server(request.param) as server:
        with FhirClient(server.base_url) as warm:
            # learn once, up front, what fhircare probes for, so tests count only their own requests
            warm.resolves_conditional_references()
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
def reference_batch(fhir_server: Any) -> int:
    """1 on a server that does not resolve conditional references (a check batch before writing), else 0."""
    from tests.support.servers import reference_check_requests

    return reference_check_requests(fhir_server)


@pytest.fixture()
def include_batch(client: FhirClient) -> int:
    """1 on a server that ignores ``_include`` (a task run then reads the Task's focus in one more
    batch), else 0. Asked through the test's client, so the views it calls do not probe again."""
    return 0 if client.include_works("Task", "Task:focus") else 1


@pytest.fixture()
def resolves(reference_batch: int) -> bool:
    """True on a server that resolves conditional references inside a transaction."""
    return reference_batch == 0


@pytest.fixture()
def uid() -> str:
    """A value unique to this test, for identifiers that must not collide with other tests' data."""
    return uuid.uuid4().hex[:12]
