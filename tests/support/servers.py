"""What tests ask of any FHIR server, independent of how it numbers versions or counts requests."""

from __future__ import annotations

from typing import Any

from fhircare.fhir import FhirClient


def versions(client: FhirClient, reference: str) -> int:
    """How many versions of a resource the server keeps (1 = never updated); servers differ in how
    they name versions (the embedded server counts 1, 2, 3; Medplum uses UUIDs), so count them."""
    bundle = client.request("GET", f"{reference}/_history").json()
    return len([e for e in bundle.get("entry") or [] if e.get("resource") or e.get("request")])


def reference_check_requests(server: Any) -> int:
    """Requests a workflow spends checking literal references before it writes: none on a server that
    resolves conditional references inside the transaction, one batch on any other."""
    with FhirClient(server.base_url) as client:
        return 0 if client.resolves_conditional_references() else 1
