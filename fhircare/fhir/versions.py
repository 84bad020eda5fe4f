"""Resource versions as servers name them: ETags, and the version a transaction entry wrote."""

from __future__ import annotations

from typing import Any


def etag_version(etag: str | None) -> str | None:
    """``W/"3"`` -> ``3``."""
    if not etag:
        return None
    return etag.strip().removeprefix("W/").strip('"') or None


def weak_etag(version: str | int) -> str:
    return f'W/"{version}"'


def written_version(result: dict[str, Any]) -> str | None:
    """The version a transaction-response entry says it wrote: its ETag, its Location's
    ``_history/<v>``, or the returned resource's ``meta.versionId``."""
    response = result.get("response") or {}
    version = etag_version(str(response.get("etag") or ""))
    if version:
        return version
    location = str(response.get("location") or "")
    if "/_history/" in location:
        return location.split("/_history/", 1)[1].strip("/") or None
    resource = result.get("resource")
    if isinstance(resource, dict):
        found = (resource.get("meta") or {}).get("versionId")
        return str(found) if found else None
    return None
