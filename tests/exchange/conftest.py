"""Two organizations on two real FHIR servers: ours (the embedded server) and a partner's (a second
embedded server, or Medplum's router), the partner reached through the fault proxy."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from fhircare.exchange import Exchange, parse_partners
from fhircare.fhir import FhirClient
from fhircare.server import EmbeddedServer
from fhircare.settings import Settings
from fhircare.workflows import run
from tests.faults.proxy import FaultProxy
from tests.support.cases import referral_payload
from tests.support.clock import day
from tests.support.servers import new_server, wanted_servers


@pytest.fixture(scope="session")
def our_server() -> Iterator[EmbeddedServer]:
    with EmbeddedServer() as server:
        yield server


@pytest.fixture(scope="session", params=wanted_servers())
def partner_server(request: pytest.FixtureRequest) -> Iterator[Any]:
    with new_server(request.param) as server:
        yield server


@pytest.fixture()
def proxy(partner_server: Any) -> Iterator[FaultProxy]:
    with FaultProxy(partner_server.base_url) as running:
        yield running


@dataclass
class World:
    """One test's organizations: ours, the partner's, and a referral maker."""

    exchange: Exchange
    ours: FhirClient  # our server, direct
    theirs: FhirClient  # the partner's server, direct (what the partner's own staff use)
    proxy: FaultProxy
    partner: str
    org: str  # our Organization standing for the partner
    patient: str
    coordinator: str
    partners_file: Path

    def refer(self, note: str = "referral") -> tuple[str, str]:
        """A referral on our server owned by the partner: (Task id, ServiceRequest id)."""
        people = {"patient": self.patient, "org": self.org, "coordinator": self.coordinator}
        written = run("refer", referral_payload(people, "", due=day(14), note=note), self.ours).written
        task = next(r for r in written if r.startswith("Task/"))
        request = next(r for r in written if r.startswith("ServiceRequest/"))
        return task.split("/")[1], request.split("/")[1]

    def remote_tasks(self, task_id: str) -> list[dict[str, Any]]:
        """Every Task on the partner's server that names our Task."""
        url = f"{self.exchange.partners.base}/Task/{task_id}"
        return list(self.theirs.search("Task", {"identifier": f"urn:ietf:rfc:3986|{url}"}))

    def remote_of(self, task_id: str) -> dict[str, Any]:
        found = self.remote_tasks(task_id)
        assert len(found) == 1
        return found[0]

    def path(self, rest: str) -> str:
        """The partner's URL path for ``rest`` (as the proxy sees it: Medplum's base is /fhir/R4)."""
        from urllib.parse import urlsplit

        base = urlsplit(self.proxy.base_url).path.rstrip("/")
        return f"{base}/{rest}" if rest else base

    def partner_requests(self) -> int:
        return len(self.proxy.log.seen)


def _make(client: FhirClient, resource: dict[str, Any]) -> str:
    created = client.create(resource)
    return f"{created['resourceType']}/{created['id']}"


@pytest.fixture()
def world(
    our_server: EmbeddedServer, partner_server: Any, proxy: FaultProxy, tmp_path: Path
) -> Iterator[World]:
    uid = uuid.uuid4().hex[:10]
    with (
        FhirClient(our_server.base_url, retries=2, backoff_factor=0.05) as ours,
        FhirClient(partner_server.base_url, retries=2, backoff_factor=0.05) as theirs,
    ):
        clinic = _make(ours, {"resourceType": "Organization", "name": f"Clinic {uid}"})
        org = _make(ours, {"resourceType": "Organization", "name": f"Food bank {uid}"})
        patient = _make(ours, {"resourceType": "Patient", "name": [{"family": f"Loop{uid}"}]})
        coordinator = _make(ours, {"resourceType": "Practitioner", "name": [{"family": "Coord"}]})
        name = f"fb-{uid}"
        document = {
            "self": {"base": our_server.base_url, "organization": clinic},
            "partners": {
                name: {
                    "organization": org,
                    "base": proxy.base_url,
                    "pattern": "direct",
                    "auth": {"mode": "none"},
                    "poll": "2s",
                    "overlap": "5m",
                    "notify": "poll",
                    "disclosure": "agreement",
                }
            },
        }
        path = tmp_path / "partners.yaml"
        path.write_text(yaml.safe_dump(document), encoding="utf-8")
        settings = Settings.from_env({}, base_url=our_server.base_url, retries=1, backoff_factor=0.01)
        settings = Settings(**{**settings.__dict__, "timeout_read": 5.0})
        exchange = Exchange(settings, parse_partners(document, str(path)), ours)
        try:
            yield World(exchange, ours, theirs, proxy, name, org, patient, coordinator, path)
        finally:
            exchange.close()
