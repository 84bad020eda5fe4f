"""Review of the lean write path (commits 58d2f18 and 3aa1893): what the hand-made request, the compiled
payload check, the per-schema reference plan and the learned legacy-stamp flag changed.

Tests marked ``xfail(strict=True)`` demonstrate a defect (the suite stays green while it is there and
turns red once it is fixed, so the mark can go); the others are regression guards for what was found sound.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import requests
import responses
from referencing import Resource
from referencing.jsonschema import DRAFT202012
from requests.auth import AuthBase, HTTPDigestAuth

from fhircare.errors import ConfigurationError, PayloadError
from fhircare.fhir import FhirClient
from fhircare.fhir.auth import BearerAuth
from fhircare.mapping import validate
from fhircare.mapping.validate import REFERENCE_SHAPE
from fhircare.settings import Settings
from fhircare.workflows import get_workflow
from tests.support.places import places, replaced

BASE = "http://fhir.test/r4"
PROFILES = Settings().profiles_dir
WORKFLOWS = PROFILES / "workflows"
GOLDEN = Path(__file__).resolve().parents[1] / "golden"


def _golden(workflow: str) -> dict[str, Any]:
    path = sorted((GOLDEN / workflow).glob("*.json"))[0]
    payload: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))["payload"]
    return payload


def _jsonschema_errors(workflow: str, payload: Any) -> list[str]:
    """What jsonschema alone (the authority, and the only check before 58d2f18) says."""
    checker = jsonschema.Draft202012Validator(
        validate.load_schema(WORKFLOWS / f"{workflow}.schema.json"),
        registry=validate._registry(WORKFLOWS),
        format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
    )
    return [e.message for e in checker.iter_errors(payload)]


# ---- the hand-made request: what Session.prepare_request + Session.send did --------------------------


@responses.activate
def test_an_auth_that_answers_a_challenge_through_a_response_hook_still_works():
    challenge = 'Digest realm="fhir", nonce="abc", qop="auth"'
    responses.get(f"{BASE}/Patient/1", status=401, headers={"WWW-Authenticate": challenge})
    responses.get(f"{BASE}/Patient/1", json={"resourceType": "Patient", "id": "1"})
    client = FhirClient(BASE, auth=HTTPDigestAuth("user", "secret"))

    assert client.read("Patient", "1")["id"] == "1"
    assert responses.calls[1].request.headers["Authorization"].startswith("Digest ")


class _HookingAuth(AuthBase):
    """An auth that, like requests' own Digest auth or requests-ntlm, registers a response hook."""

    def __init__(self) -> None:
        self.seen: list[int] = []

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = "Custom x"
        request.register_hook("response", lambda response, **_: self.seen.append(response.status_code))
        return request


@responses.activate
def test_a_response_hook_an_auth_registers_is_called():
    responses.get(f"{BASE}/Patient/1", json={"resourceType": "Patient", "id": "1"})
    auth = _HookingAuth()
    FhirClient(BASE, auth=auth).read("Patient", "1")
    assert auth.seen == [200]


@responses.activate
def test_response_hooks_get_the_send_settings_as_session_send_gave_them():
    responses.get(f"{BASE}/Patient/1", json={"resourceType": "Patient", "id": "1"})
    client = FhirClient(BASE, timeout=(1.5, 7.0))
    seen: list[dict[str, Any]] = []
    client.session.hooks["response"].append(lambda response, **kwargs: seen.append(kwargs))
    client.read("Patient", "1")
    assert seen and seen[0].get("timeout") == (1.5, 7.0) and "proxies" in seen[0]


@responses.activate
def test_a_header_value_with_a_line_break_is_refused_before_anything_is_sent():
    responses.post(f"{BASE}/Patient", json={"resourceType": "Patient", "id": "1"}, status=201)
    client = FhirClient(BASE)
    with pytest.raises(requests.exceptions.InvalidHeader):
        client.create({"resourceType": "Patient"}, if_none_exist="identifier=a|b\r\n\tX-Injected: yes")
    assert len(responses.calls) == 0


@responses.activate
def test_session_headers_cookies_bearer_and_per_request_params_still_go_out():
    """Regression guard: what the lean prepare keeps (and the cached param-less URL stays exact)."""
    responses.get(f"{BASE}/Task/1", json={"resourceType": "Task", "id": "1"}, headers={"Set-Cookie": "lb=a1"})
    responses.get(f"{BASE}/Task", json={"resourceType": "Bundle", "type": "searchset"})
    client = FhirClient(BASE, auth=BearerAuth("tok"), headers={"X-Tenant": "t1"})
    client.read("Task", "1")
    client.request("GET", "Task", params={"status": "ready", "_count": "5"})
    second = responses.calls[1].request
    assert second.url == f"{BASE}/Task?status=ready&_count=5"
    assert second.headers["Authorization"] == "Bearer tok" and second.headers["X-Tenant"] == "t1"
    assert second.headers["Cookie"] == "lb=a1"


# ---- the compiled payload check: it may only say "valid" where jsonschema does ------------------------


def test_a_year_zero_date_is_refused_as_jsonschema_refuses_it():
    payload = {**_golden("refer"), "due": "0000-01-01"}
    assert _jsonschema_errors("refer", payload)  # the authority refuses it
    with pytest.raises(PayloadError):
        validate.validate_payload(PROFILES, "refer", payload)


@responses.activate
def test_a_transition_with_a_year_zero_discharge_date_is_a_payload_error_not_a_crash():
    payload = {**_golden("transition"), "discharge_date": "0000-01-01", "follow_up_due": "0000-01-03"}
    workflow = get_workflow("transition", FhirClient(BASE))
    with pytest.raises(PayloadError):
        workflow.run(payload)
    assert len(responses.calls) == 0


def test_a_tuple_where_the_schema_wants_an_array_gets_jsonschemas_answer():
    payload = {**_golden("educate")}
    payload["recipients"] = tuple(payload["recipients"])
    assert _jsonschema_errors("educate", payload)
    with pytest.raises(PayloadError):
        validate.validate_payload(PROFILES, "educate", payload)


def test_every_date_of_year_one_and_later_gets_jsonschemas_answer():
    """Regression guard: only year 0000 splits the two date checkers."""
    schema = {"type": "object", "properties": {"d": {"$ref": "urn:fhircare:defs#/$defs/date"}}}
    fast = validate.compiled_validator(schema, validate._registry(WORKFLOWS))
    plain = jsonschema.Draft202012Validator(
        schema, registry=validate._registry(WORKFLOWS), format_checker=jsonschema.FormatChecker()
    )
    for year in ("0001", "1900", "2000", "2024", "2026", "9999"):
        for month in range(14):
            for day in range(33):
                document = {"d": f"{year}-{month:02d}-{day:02d}"}
                assert bool(list(fast.iter_errors(document))) == bool(list(plain.iter_errors(document)))


# ---- the reference plan: the same (path, value) pairs the walk before 58d2f18 found ------------------


def _old_reference_paths(
    schema: dict[str, Any], payload: Any, registry: Any
) -> list[tuple[tuple[Any, ...], str]]:
    """``reference_paths`` as it was before 58d2f18 (``git show 58d2f18^:fhircare/mapping/validate.py``)."""
    found: list[tuple[tuple[Any, ...], str]] = []

    def walk(node: dict[str, Any], value: Any, at: tuple[Any, ...], resolver: Any) -> None:
        ref = node.get("$ref")
        if isinstance(ref, str):
            name = ref.rsplit("/", 1)[-1]
            if name == "ref" or name.endswith("_ref"):
                if isinstance(value, str) and REFERENCE_SHAPE.match(value):
                    found.append((at, value))
                return
            resolved = resolver.lookup(ref)
            walk(resolved.contents, value, at, resolved.resolver)
            return
        if isinstance(value, dict):
            for key, child in (node.get("properties") or {}).items():
                if key in value:
                    walk(child, value[key], (*at, key), resolver)
        if isinstance(value, list) and isinstance(node.get("items"), dict):
            for i, item in enumerate(value):
                walk(node["items"], item, (*at, i), resolver)
        for branch in (*(node.get("oneOf") or ()), *(node.get("anyOf") or ()), *(node.get("allOf") or ())):
            walk(branch, value, at, resolver)

    walk(schema, payload, (), registry.resolver(schema.get("$id", "")))
    return sorted(set(found), key=lambda pv: [str(p) for p in pv[0]])


ODD_VALUES: list[Any] = [
    "Patient/p1",
    "Organization?identifier=urn:oid:1|x",
    "free text",
    ["Practitioner/a", "Organization/b", "text"],
    {"reference": "Patient/p2"},
    {"detail": {"performer": "Organization/o1", "location": "Location/l1"}},
    [{"service": "x", "performer": "Organization/o2", "due": "2026-01-01"}],
    {"family": "Silva", "given": ["Ana"]},
    None,
    7,
]


@pytest.mark.parametrize(
    "workflow", sorted(p.name.split(".")[0] for p in WORKFLOWS.glob("[!_]*.schema.json"))
)
def test_the_reference_plan_finds_what_the_walk_before_it_found(workflow):
    """Regression guard: every workflow schema, its golden payloads, each field replaced by odd values
    (references, searches, text, nested objects, lists), and every schema property set to each."""
    schema = validate.load_schema(WORKFLOWS / f"{workflow}.schema.json")
    registry = validate._registry(WORKFLOWS)
    payloads = [
        json.loads(p.read_text(encoding="utf-8"))["payload"]
        for p in sorted((GOLDEN / workflow).glob("*.json"))
    ]
    payloads += [{key: odd for key in schema.get("properties", {})} for odd in ODD_VALUES]
    checked = 0
    for payload in payloads:
        for at in [(), *places(payload)]:
            for odd in ODD_VALUES if at else [None]:
                document = replaced(payload, at, odd) if at else payload
                assert validate.reference_paths(schema, document, registry) == _old_reference_paths(
                    schema, document, registry
                ), (at, odd)
                checked += 1
    assert checked > 50


def test_an_overlay_schema_with_its_own_defs_finds_references_in_a_payload_without_that_field(tmp_path):
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {
            "patient": {"$ref": "urn:fhircare:defs#/$defs/patient_ref"},
            "contact": {"$ref": "#/$defs/contact"},
        },
        "$defs": {
            "contact": {
                "type": "object",
                "properties": {"who": {"$ref": "urn:fhircare:defs#/$defs/practitioner_ref"}},
            }
        },
    }
    schema_file = tmp_path / "housing-contact.schema.json"
    schema_file.write_text(json.dumps(schema), encoding="utf-8")
    payload = {"patient": "Patient/p1"}
    # valid: jsonschema resolves the schema's own $defs against its root
    validate.validate_payload(PROFILES, "housing-contact", payload, schema_file)
    old = _old_reference_paths(validate.load_schema(schema_file), payload, validate._registry(WORKFLOWS))
    assert old == [(("patient",), "Patient/p1")]
    assert validate.payload_references(PROFILES, "housing-contact", payload, schema_file) == old


def test_a_recursive_schema_still_has_its_references_found():
    tree = {
        "$id": "urn:review:tree",
        "type": "object",
        "properties": {
            "owner": {"$ref": "urn:fhircare:defs#/$defs/practitioner_ref"},
            "children": {"type": "array", "items": {"$ref": "urn:review:tree"}},
        },
    }
    registry = validate._registry(WORKFLOWS).with_resource(
        "urn:review:tree", Resource.from_contents(tree, default_specification=DRAFT202012)
    )
    payload = {"owner": "Practitioner/a", "children": [{"owner": "Practitioner/b", "children": []}]}
    expected = [(("children", 0, "owner"), "Practitioner/b"), (("owner",), "Practitioner/a")]
    assert _old_reference_paths(tree, payload, registry) == expected
    try:
        found = validate.reference_paths(tree, payload, registry)
    except ConfigurationError:
        found = None
    assert found == expected


# ---- the legacy-stamp probe: one answer per base URL, whoever asked -----------------------------------


@responses.activate
def test_what_a_patient_scoped_caller_cannot_see_is_not_learned_for_everyone():
    """A client whose token may see part of the server (the sidecar's SMART and pass-through clients are
    made ``scoped``) neither probes nor keeps an answer: it assumes earlier stamps (the OR is always
    correct); a client with the server's whole view learns what the server holds."""

    def answer(request: Any) -> tuple[int, dict[str, str], str]:
        scoped = request.headers.get("Authorization") == "Bearer patient-scoped"
        entry = (
            []
            if scoped
            else [{"resource": {"resourceType": "Provenance", "id": "old"}, "search": {"mode": "match"}}]
        )
        return (
            200,
            {"Content-Type": "application/fhir+json"},
            json.dumps({"resourceType": "Bundle", "type": "searchset", "entry": entry}),
        )

    responses.add_callback(responses.GET, f"{BASE}/Provenance", callback=answer)
    assert FhirClient(BASE, auth=BearerAuth("patient-scoped"), scoped=True).holds_legacy_stamps() is True
    assert len(responses.calls) == 0
    assert FhirClient(BASE).behaviour.legacy_stamps is None  # nothing was learned for everyone
    assert FhirClient(BASE, auth=BearerAuth("system")).holds_legacy_stamps() is True
    assert len(responses.calls) == 1


def test_a_workflow_object_follows_the_client_it_runs_with():
    """Regression guard: ``_check_mode`` sets ``namespaces.legacy`` from the workflow's current client on
    every attempt, so one workflow object used with two servers never carries the first one's answer."""
    from fhircare.fhir.behaviour import ServerBehaviour

    workflow = get_workflow("refer", FhirClient(BASE))
    for holds in (False, True, False):
        workflow.client = FhirClient(BASE + f"/{holds}")
        workflow.client.policy._behaviour = ServerBehaviour(conditional_references=True, legacy_stamps=holds)
        assert workflow._check_mode() == "transaction"
        assert workflow.namespaces.legacy is holds


@responses.activate
def test_the_compartment_filter_still_applies_to_every_answer_of_a_patient_sessions_view_client():
    """Regression guard: the sidecar's response hook (fhir_access.view_client) runs on the lean send too:
    a read of another patient's resource is refused, another patient's search entries are removed."""
    from fhircare.errors import ScopeDenied
    from fhircare.web.compartment import compartment_filter

    def task(tid: str, patient: str) -> dict[str, Any]:
        return {"resourceType": "Task", "id": tid, "for": {"reference": patient}}

    responses.get(f"{BASE}/Task/theirs", json=task("theirs", "Patient/other"))
    responses.get(
        f"{BASE}/Task",
        json={
            "resourceType": "Bundle",
            "type": "searchset",
            "entry": [
                {"resource": task("mine", "Patient/p1")},
                {"resource": task("theirs", "Patient/other")},
            ],
        },
    )
    client = FhirClient(BASE)
    client.session.hooks["response"].append(compartment_filter("Patient/p1"))
    with pytest.raises(ScopeDenied):
        client.read("Task", "theirs")
    answer = client.request("GET", "Task", params={"status": "ready"}).json()
    assert [e["resource"]["id"] for e in answer["entry"]] == ["mine"]
