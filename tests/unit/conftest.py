"""Unit tests talk to mocked servers that share a base URL: each test learns about it from scratch."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def fresh_behaviour_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FHIRCARE_CACHE_DIR", str(tmp_path / "cache"))
