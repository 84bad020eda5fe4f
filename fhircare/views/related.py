"""The resources a page of matches points at (patients, foci, owners), whatever the server does with
``_include``: taken from the page when the server included them, else read in one batch per page."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..fhir import FhirClient, Page


def related_resources(
    client: FhirClient, page: Page, references: Iterable[str | None], included: bool
) -> dict[str, dict[str, Any]]:
    """``Type/id`` -> resource for every reference given: the page's own includes, plus (when the server
    does not include) one batch of reads for the rest. Never one request per row."""
    found = page.by_reference()
    if included:
        return found
    wanted = sorted({ref for ref in references if ref and ref.count("/") == 1 and ref not in found})
    return {**found, **client.read_found(wanted)}
