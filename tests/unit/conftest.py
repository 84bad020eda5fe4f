"""Unit tests talk to mocked servers that share a base URL: each test learns about it from scratch."""

from __future__ import annotations

import pytest

from fhircare.fhir import client as client_module


@pytest.fixture(autouse=True)
def fresh_behaviour_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FHIRCARE_CACHE_DIR", str(tmp_path / "cache"))
    # nor the CapabilityStatement a client of this process fetched for the same URL in another test
    monkeypatch.setattr(client_module, "_STATEMENTS", {})
