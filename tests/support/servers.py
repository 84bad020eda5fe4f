"""What tests ask of any FHIR server, independent of how it numbers versions or counts requests."""

from __future__ import annotations

import os
from typing import Any

from fhircare.fhir import FhirClient

#: the FHIR servers every server-facing test runs on: the embedded SEKMET server and Medplum's FHIR
#: router (Node, in memory; tests/servers/medplum). ``FHIRCARE_TEST_SERVERS=embedded`` narrows it.
SERVERS = ("embedded", "medplum")


def wanted_servers() -> list[str]:
    """The kinds in ``SERVERS`` that ``FHIRCARE_TEST_SERVERS`` (comma-separated; unset: all) asks for."""
    wanted = os.environ.get("FHIRCARE_TEST_SERVERS")
    return [s for s in SERVERS if not wanted or s in wanted.split(",")]


def new_server(kind: str) -> Any:
    """An unstarted server of that kind (a context manager with ``base_url``), tagged with its kind."""
    if kind == "embedded":
        from fhircare.server import EmbeddedServer

        server: Any = EmbeddedServer()
    else:
        from tests.servers.medplum import MedplumServer

        server = MedplumServer()
    server.kind = kind
    return server


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
