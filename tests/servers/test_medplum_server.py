"""The Medplum test server answers as Medplum's router does, over real HTTP (no mocks).

Several tests pin the router's known limits (conditional references kept verbatim, no paging links,
``_include`` ignored, the 8-entry strict-isolation cap) so that a change of Medplum version that alters
them is noticed here first.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from fhircare.fhir import FhirClient
from tests.servers import MedplumServer

FHIR_JSON = "application/fhir+json"


class Answer:
    """Status, headers and parsed JSON body of one HTTP exchange."""

    def __init__(self, status: int, headers: dict[str, str], body: Any) -> None:
        self.status = status
        self.headers = headers
        self.body = body


def call(
    base: str, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
) -> Answer:
    url = f"{base}/{path}" if path else base
    data = json.dumps(body).encode() if body is not None else None
    send = {
        "Accept": FHIR_JSON,
        **({"Content-Type": FHIR_JSON} if data is not None else {}),
        **(headers or {}),
    }
    request = urllib.request.Request(url, data=data, method=method, headers=send)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            raw = response.read()
            return Answer(response.status, dict(response.headers), json.loads(raw) if raw else None)
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        return Answer(exc.code, dict(exc.headers), json.loads(raw) if raw else None)


def outcome_text(outcome: dict[str, Any]) -> str:
    return " ".join(str((i.get("details") or {}).get("text", "")) for i in outcome.get("issue") or [])


@pytest.fixture(scope="module")
def medplum() -> Iterator[MedplumServer]:
    with MedplumServer() as server:
        yield server


@pytest.fixture(scope="module")
def medplum_batch() -> Iterator[MedplumServer]:
    with MedplumServer(transaction_as_batch=True) as server:
        yield server


@pytest.fixture()
def base(medplum: MedplumServer) -> str:
    return medplum.base_url


@pytest.fixture()
def fhir(medplum: MedplumServer) -> Iterator[FhirClient]:
    with FhirClient(medplum.base_url, retries=0) as client:
        yield client


def test_metadata_is_a_capability_statement_declaring_transaction_without_include(base: str) -> None:
    answer = call(base, "GET", "metadata")
    assert answer.status == 200
    assert answer.headers["Content-Type"].startswith(FHIR_JSON)
    statement = answer.body
    assert statement["resourceType"] == "CapabilityStatement"
    assert statement["fhirVersion"] == "4.0.1"
    rest = statement["rest"][0]
    assert rest["mode"] == "server"
    assert {"transaction", "batch"} <= {i["code"] for i in rest["interaction"]}
    patient = next(r for r in rest["resource"] if r["type"] == "Patient")
    assert {"read", "vread", "update", "create", "search-type", "history-instance"} <= {
        i["code"] for i in patient["interaction"]
    }
    assert patient["conditionalCreate"] is True
    assert patient["conditionalUpdate"] is True
    assert patient["conditionalDelete"] == "single"
    assert {"identifier", "name", "_id"} <= {p["name"] for p in patient["searchParam"]}
    for resource in rest["resource"]:
        assert "searchInclude" not in resource
        assert "searchRevInclude" not in resource


def test_create_answers_201_with_location_etag_and_read_returns_it(base: str) -> None:
    created = call(base, "POST", "Patient", {"resourceType": "Patient", "name": [{"family": "Create"}]})
    assert created.status == 201
    patient = created.body
    version = patient["meta"]["versionId"]
    assert created.headers["ETag"] == f'W/"{version}"'
    assert created.headers["Location"] == f"{base}/Patient/{patient['id']}/_history/{version}"
    assert "Last-Modified" in created.headers

    read = call(base, "GET", f"Patient/{patient['id']}")
    assert read.status == 200
    assert read.body == patient
    assert read.headers["ETag"] == f'W/"{version}"'
    assert call(base, "GET", created.headers["Location"][len(base) + 1 :]).body == patient


def test_client_create_read_and_conditional_create_does_not_duplicate(
    medplum: MedplumServer, fhir: FhirClient
) -> None:
    value = uuid.uuid4().hex
    patient = {"resourceType": "Patient", "identifier": [{"system": "urn:test", "value": value}]}
    first = fhir.create(patient, if_none_exist=f"identifier=urn:test|{value}")
    before = medplum.resource_counts()
    second = fhir.create(patient, if_none_exist=f"identifier=urn:test|{value}")
    assert second["id"] == first["id"]
    assert medplum.resource_counts() == before
    assert fhir.read("Patient", first["id"])["identifier"][0]["value"] == value


def test_conditional_create_match_answers_200_with_the_existing_resource(base: str) -> None:
    value = uuid.uuid4().hex
    body = {"resourceType": "Patient", "identifier": [{"system": "urn:test", "value": value}]}
    headers = {"If-None-Exist": f"identifier=urn:test|{value}"}
    first = call(base, "POST", "Patient", body, headers)
    again = call(base, "POST", "Patient", body, headers)
    assert (first.status, again.status) == (201, 200)
    assert again.body["id"] == first.body["id"]
    assert "Location" not in again.headers


def test_stale_if_match_answers_412(base: str) -> None:
    patient = call(base, "POST", "Patient", {"resourceType": "Patient"}).body
    stale = patient["meta"]["versionId"]
    updated = call(base, "PUT", f"Patient/{patient['id']}", {**patient, "active": True})
    assert updated.status == 200
    assert updated.body["meta"]["versionId"] != stale
    refused = call(
        base, "PUT", f"Patient/{patient['id']}", {**patient, "active": False}, {"If-Match": f'W/"{stale}"'}
    )
    assert refused.status == 412
    assert refused.body["resourceType"] == "OperationOutcome"
    current = updated.body["meta"]["versionId"]
    accepted = call(
        base, "PUT", f"Patient/{patient['id']}", {**patient, "active": False}, {"If-Match": f'W/"{current}"'}
    )
    assert accepted.status == 200


def test_transaction_resolves_urn_uuid_references_and_keeps_conditional_references_verbatim(
    base: str,
) -> None:
    patient_urn = f"urn:uuid:{uuid.uuid4()}"
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": patient_urn,
                "resource": {"resourceType": "Patient", "name": [{"family": "Tx"}]},
                "request": {"method": "POST", "url": "Patient"},
            },
            {
                "resource": {
                    "resourceType": "Observation",
                    "status": "final",
                    "code": {"text": "weight"},
                    "subject": {"reference": patient_urn},
                    "performer": [{"reference": "Organization?_id=x"}],
                },
                "request": {"method": "POST", "url": "Observation"},
            },
        ],
    }
    answer = call(base, "POST", "", bundle)
    assert answer.status == 200
    assert answer.body["type"] == "transaction-response"
    statuses = [e["response"]["status"] for e in answer.body["entry"]]
    assert statuses == ["201", "201"]
    patient_ref = answer.body["entry"][0]["response"]["location"]
    observation = call(base, "GET", answer.body["entry"][1]["response"]["location"]).body
    assert observation["subject"]["reference"] == patient_ref
    assert patient_ref.startswith("Patient/")
    # Medplum does not resolve conditional references: stored as sent.
    assert observation["performer"][0]["reference"] == "Organization?_id=x"


def test_failed_transaction_leaves_nothing_behind(medplum: MedplumServer, base: str) -> None:
    kept = call(base, "POST", "Patient", {"resourceType": "Patient", "name": [{"family": "Kept"}]}).body
    before = medplum.resource_counts()
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": {"resourceType": "Patient", "name": [{"family": "RolledBack"}]},
                "request": {"method": "POST", "url": "Patient"},
            },
            {
                "resource": {**kept, "active": True},
                "request": {"method": "PUT", "url": f"Patient/{kept['id']}"},
            },
            {
                # the type does not match the URL: the router refuses the entry, so the whole transaction
                "resource": {"resourceType": "Observation", "status": "final", "code": {"text": "x"}},
                "request": {"method": "POST", "url": "Patient"},
            },
        ],
    }
    answer = call(base, "POST", "", bundle)
    assert answer.status == 400
    assert answer.body["resourceType"] == "OperationOutcome"
    assert medplum.resource_counts() == before
    assert call(base, "GET", f"Patient/{kept['id']}").body == kept
    history = call(base, "GET", f"Patient/{kept['id']}/_history").body
    assert [e["resource"]["meta"]["versionId"] for e in history["entry"]] == [kept["meta"]["versionId"]]


def test_transaction_of_nine_conditional_entries_needs_strict_isolation(base: str) -> None:
    tag = uuid.uuid4().hex
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": {"resourceType": "Patient", "identifier": [{"system": tag, "value": str(i)}]},
                "request": {"method": "POST", "url": "Patient", "ifNoneExist": f"identifier={tag}|{i}"},
            }
            for i in range(9)
        ],
    }
    answer = call(base, "POST", "", bundle)
    assert answer.status == 400
    assert "strict isolation" in outcome_text(answer.body)
    eight = {**bundle, "entry": bundle["entry"][:8]}
    assert call(base, "POST", "", eight).status == 200


def test_trailing_slash_base_accepts_a_transaction(medplum: MedplumServer) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"resource": {"resourceType": "Patient"}, "request": {"method": "POST", "url": "Patient"}}],
    }
    answer = call(medplum.base_url + "/", "POST", "", bundle)
    assert answer.status == 200
    assert answer.body["entry"][0]["response"]["status"] == "201"


def test_search_count_pages_without_next_link_and_include_adds_nothing(base: str) -> None:
    family = f"Page{uuid.uuid4().hex[:10]}"
    organization = call(base, "POST", "Organization", {"resourceType": "Organization", "name": family}).body
    for i in range(5):
        call(
            base,
            "POST",
            "Patient",
            {
                "resourceType": "Patient",
                "name": [{"family": family, "given": [f"G{i}"]}],
                "managingOrganization": {"reference": f"Organization/{organization['id']}"},
            },
        )
    page = call(base, "GET", f"Patient?family={family}&_count=2").body
    assert page["type"] == "searchset"
    assert len(page["entry"]) == 2
    assert not any(link.get("relation") == "next" for link in page.get("link") or [])
    assert page["total"] == 5  # every match, whatever _count says

    included = call(base, "GET", f"Patient?family={family}&_include=Patient:organization").body
    assert len(included["entry"]) == 5
    assert {e["resource"]["resourceType"] for e in included["entry"]} == {"Patient"}

    # the only way on is _offset, which MemoryRepository applies after matching (total stays 5)
    last = call(base, "GET", f"Patient?family={family}&_count=2&_offset=4").body
    assert len(last["entry"]) == 1
    assert last["total"] == 5


def test_request_counter_and_admin_endpoints(medplum: MedplumServer, base: str) -> None:
    start = medplum.counter.count
    call(base, "GET", "metadata")
    call(base, "GET", "Patient?_count=1")
    assert medplum.counter.count - start == 2
    assert isinstance(medplum.resource_counts().get("Patient"), int)


def test_transaction_as_batch_answers_200_with_per_entry_errors(medplum_batch: MedplumServer) -> None:
    base = medplum_batch.base_url
    medplum_batch.reset()
    assert medplum_batch.resource_counts() == {}
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": {"resourceType": "Patient"}, "request": {"method": "POST", "url": "Patient"}},
            {
                "resource": {"resourceType": "Observation", "status": "final", "code": {"text": "x"}},
                "request": {"method": "POST", "url": "Patient"},
            },
        ],
    }
    answer = call(base, "POST", "", bundle)
    assert answer.status == 200
    assert answer.body["type"] == "transaction-response"
    assert [e["response"]["status"] for e in answer.body["entry"]] == ["201", "400"]
    assert answer.body["entry"][1]["response"]["outcome"]["resourceType"] == "OperationOutcome"
    # no rollback in this mode: the first entry stays
    assert medplum_batch.resource_counts() == {"Patient": 1}
    medplum_batch.reset()
    assert medplum_batch.resource_counts() == {}
