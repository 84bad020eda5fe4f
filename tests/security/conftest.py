"""Attack fixtures: the embedded FHIR server (tests/conftest.py), an Authlib SMART authorization server
over real HTTP that also revokes tokens and counts discovery requests, sidecars in every auth mode over
real HTTP, and two patients, A (the session's) and B (the target), each with a record to attack."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
from flask import Response, jsonify, request

from fhircare.fhir import FhirClient
from fhircare.server.launcher import free_port
from fhircare.settings import Settings
from fhircare.workflows import run
from tests.integration.sidecar_harness import Sidecar, smart_settings
from tests.integration.smart_server import Client, SmartAuthServer
from tests.support.cases import (
    active_coverage,
    basics,
    booked_appointment,
    prior_auth_case,
    referral_payload,
)


class AttackedAuthServer(SmartAuthServer):
    """The tests' SMART server, plus RFC 7009 revocation and a count of discovery requests."""

    def __init__(self, fhir_base: str) -> None:
        super().__init__(fhir_base)
        self.discovery_hits = 0
        self.revoked: list[str] = []
        discovery = self.app.view_functions["discovery"]
        owner = self

        def counted_discovery() -> Response:
            owner.discovery_hits += 1
            answer = discovery()
            document = answer.get_json()
            document["revocation_endpoint"] = f"{owner.base}/revoke"
            return jsonify(document)

        self.app.view_functions["discovery"] = counted_discovery

        @self.app.post("/revoke")
        def revoke() -> tuple[str, int]:
            token = request.form.get("token", "")
            for issued in (owner.tokens.get(token), owner.refresh_tokens.get(token)):
                if issued is not None:
                    issued.revoked = True
                    owner.revoked.append(token)
            return "", 200


@pytest.fixture()
def auth(fhir_server) -> Iterator[AttackedAuthServer]:
    server = AttackedAuthServer(fhir_server.base_url)
    server.start()
    yield server
    server.stop()


@pytest.fixture()
def smart_sidecar(auth) -> Callable[..., Sidecar]:
    """``smart_sidecar(**settings)``: a started SMART sidecar registered with the authorization server."""
    started: list[Sidecar] = []

    def start(**extra: Any) -> Sidecar:
        port = free_port()
        auth.register(Client("fhircare-test", [f"http://127.0.0.1:{port}/callback"]))
        sidecar = Sidecar(smart_settings(auth.iss, port, **extra), port).__enter__()
        started.append(sidecar)
        return sidecar

    yield start  # type: ignore[misc]
    for sidecar in started:
        sidecar.__exit__(None, None, None)


@pytest.fixture()
def sidecar(smart_sidecar) -> Sidecar:
    return smart_sidecar()


@pytest.fixture()
def dev(fhir_server) -> Iterator[Sidecar]:
    with Sidecar(Settings(base_url=fhir_server.base_url)) as running:
        yield running


def login(
    sidecar: Sidecar,
    auth: SmartAuthServer,
    patient: str | None = None,
    scope: str | None = None,
    launch: str | None = "ehr-launch",
) -> requests.Session:
    """A browser signed in through the launch; ``patient`` (``Patient/id``) makes it a patient session."""
    auth.grant_patient = patient.split("/", 1)[1] if patient else None
    auth.grant_scope = scope
    browser = requests.Session()
    params = {"iss": auth.iss, **({"launch": launch} if launch else {})}
    answer = browser.get(f"{sidecar.url}/launch", params=params, allow_redirects=True, timeout=30)
    assert answer.history and answer.history[-1].headers.get("Location") == "/", answer.text
    return browser


def csrf_of(browser: requests.Session, sidecar: Sidecar, path: str = "/") -> str:
    """The CSRF token a page's forms carry (the page is fetched with the browser's cookies)."""
    import re

    html = browser.get(f"{sidecar.url}{path}", timeout=30).text
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html[:500]
    return found.group(1)


@dataclass
class Record:
    """One patient's resources: what an attacker in the other patient's session goes after."""

    patient: str
    basics: dict[str, str]
    appointment: str
    referral: str
    task: str
    prior_auth_task: str
    claim: str
    extra: dict[str, str] = field(default_factory=dict)


def record_of(client: FhirClient, uid: str, family: str) -> Record:
    b = basics(client, uid)
    client.update(
        {
            **client.read_reference(b["patient"]),
            "name": [{"family": family, "given": ["Pat"]}],
            "birthDate": "1961-02-03",
            "identifier": [{"system": "urn:test:mrn", "value": f"MRN-{family}-{uid}"}],
        }
    )
    written = run("refer", referral_payload(b, uid), client).written
    request_ref, task = written[0], written[1]
    appointment = booked_appointment(client, b, uid + "a")
    pa_payload = prior_auth_case(client, uid + "p").payload
    # the prior authorization is about this record's patient
    pa_payload = {**pa_payload, "patient": b["patient"], "service_request": request_ref}
    coverage = active_coverage(client, b)
    pa_payload["coverage"] = coverage
    pa_payload["payer"] = b["payer"]
    pa_written = run("prior-auth", pa_payload, client).written
    return Record(
        patient=b["patient"],
        basics=b,
        appointment=appointment,
        referral=request_ref,
        task=task,
        prior_auth_task=next(r for r in pa_written if r.startswith("Task/")),
        claim=next(r for r in pa_written if r.startswith("Claim/")),
        extra={"coverage": coverage},
    )


@pytest.fixture()
def records(client, uid) -> tuple[Record, Record]:
    """(A, B): A is the session's patient, B the other patient."""
    return record_of(client, uid, f"Alpha{uid}"), record_of(client, uid + "b", f"Bravo{uid}")


def snapshot(client: FhirClient, references: list[str]) -> dict[str, str]:
    """``Type/id`` -> versionId: compare before and after an attack to see that nothing changed."""
    return {ref: str(client.read_reference(ref)["meta"]["versionId"]) for ref in references}
