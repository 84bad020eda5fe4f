"""Fixtures of the conformance suite: the written resources of the golden cases and of a demo run."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fhircare.fhir import FhirClient
from fhircare.server import EmbeddedServer

from .written import CORPUS, Written, demo_written, golden_written


@pytest.fixture(scope="session")
def golden() -> Written:
    return golden_written()


@pytest.fixture(scope="session")
def demo() -> Iterator[Written]:
    """A small demo (18 patients: referrals in every state, and the morning) on its own embedded server."""
    with EmbeddedServer() as server, FhirClient(server.base_url) as client:
        yield demo_written(client, patients=18, seed=11)


needs_corpus = pytest.mark.skipif(
    not CORPUS.is_dir(),
    reason=f"the shared corpus ({CORPUS}) is absent: R4 schema and guide examples unavailable",
)
