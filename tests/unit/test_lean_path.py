"""The lean request path: the environment is read once, validators are compiled once, structure checks
can be left to the tests, and views ask for pages as large as the server allows."""

from __future__ import annotations

import jsonschema
import pytest
import responses
from responses.matchers import query_param_matcher

from fhircare.fhir import FhirClient
from fhircare.fhir.search import LARGE_PAGE, Page, PagingLimits
from fhircare.fhir.session import OriginEnvironment, bypasses_proxy
from fhircare.mapping import validate
from fhircare.settings import Settings, environment_proxies

BASE = "http://fhir.test/r4"


def _searchset(count: int, total: int | None = None, next_url: str | None = None) -> dict[str, object]:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        **({"total": total} if total is not None else {}),
        "link": [{"relation": "next", "url": next_url}] if next_url else [],
        "entry": [
            {"resource": {"resourceType": "Task", "id": str(i)}, "search": {"mode": "match"}}
            for i in range(count)
        ],
    }


# ---- the environment, read once ---------------------------------------------------------------


def test_proxy_variables_are_read_as_urllib_reads_them_lowercase_winning():
    env = {"HTTPS_PROXY": "http://upper:3128", "https_proxy": "http://lower:3128", "NO_PROXY": "internal"}
    assert environment_proxies(env) == {"https": "http://lower:3128", "no": "internal"}


def test_http_proxy_is_ignored_inside_a_cgi_request():
    assert environment_proxies({"HTTP_PROXY": "http://evil:1", "REQUEST_METHOD": "GET"}) == {}


@pytest.mark.parametrize(
    ("host", "port", "no_proxy", "bypassed"),
    [
        ("fhir.internal.org", 443, "internal.org", True),
        ("fhir.internal.org", 443, ".internal.org", True),
        ("notinternal.org", 443, "internal.org", False),
        ("10.1.2.3", 80, "10.0.0.0/8", True),
        ("11.1.2.3", 80, "10.0.0.0/8", False),
        ("fhir.test", 8080, "fhir.test:8080", True),
        ("fhir.test", 8081, "fhir.test:8080", False),
        ("anything", None, "*", True),
        ("anything", None, "", False),
    ],
)
def test_no_proxy_exempts_names_domains_ports_and_networks(host, port, no_proxy, bypassed):
    assert bypasses_proxy(host, port, no_proxy) is bypassed


def test_an_origin_is_looked_up_once_however_many_requests_go_there(monkeypatch):
    looked_up = []
    monkeypatch.setattr("fhircare.fhir.session.get_netrc_auth", lambda url: looked_up.append(url))
    environment = OriginEnvironment({"https": "http://proxy:3128", "no": "local.test"})
    for _ in range(3):
        assert environment.for_url("https://fhir.example.org/r4/Task?x=1") == (
            {"https": "http://proxy:3128"},
            None,
        )
    assert environment.for_url("https://local.test/fhir/Task")[0] == {}
    assert looked_up == ["https://fhir.example.org/r4/Task?x=1", "https://local.test/fhir/Task"]


def test_without_trust_env_neither_proxies_nor_netrc_are_used(monkeypatch):
    monkeypatch.setattr("fhircare.fhir.session.get_netrc_auth", lambda url: ("user", "secret"))
    environment = OriginEnvironment({"https": "http://proxy:3128"}, trust_env=False)
    assert environment.for_url("https://fhir.example.org/r4") == ({}, None)


@responses.activate
def test_the_client_reads_no_environment_per_request(monkeypatch):
    responses.get(f"{BASE}/Task/1", json={"resourceType": "Task", "id": "1"})
    client = FhirClient(BASE, retries=0)

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the environment was read for a request")

    monkeypatch.setattr("requests.utils.get_environ_proxies", refuse)
    monkeypatch.setattr("requests.sessions.get_netrc_auth", refuse)
    monkeypatch.setattr("requests.utils.should_bypass_proxies", refuse)
    for _ in range(3):
        assert client.read("Task", "1")["id"] == "1"


def test_settings_read_trust_env_proxies_and_paging_once():
    settings = Settings.from_env(
        {
            "HTTPS_PROXY": "http://proxy:3128",
            "NO_PROXY": "local",
            "FHIRCARE_MAX_PAGE_SIZE": "250",
            "FHIRCARE_STRUCTURE_CHECKS": "1",
        }
    )
    assert settings.trust_env is True
    assert settings.proxies == (("https", "http://proxy:3128"), ("no", "local"))
    assert settings.max_page_size == 250
    assert settings.structure_checks is True
    off = Settings.from_env({"HTTPS_PROXY": "http://proxy:3128", "FHIRCARE_TRUST_ENV": "0"})
    assert (off.trust_env, off.proxies, off.structure_checks) == (False, (), False)
    client = FhirClient.from_settings(off)
    assert client.environment.for_url("https://fhir.example.org/") == ({}, None)


def test_a_client_from_settings_uses_the_proxies_they_hold():
    settings = Settings(proxies=(("https", "http://proxy:3128"),), max_page_size=50)
    client = FhirClient.from_settings(settings, base_url="https://fhir.example.org/r4")
    assert client.environment.for_url(client.base_url)[0] == {"https": "http://proxy:3128"}
    assert client.paging.page_size() == 50


# ---- checks before sending ----------------------------------------------------------------------


def test_a_schema_is_compiled_once():
    schema = {"type": "object", "required": ["a"]}
    registry = validate._registry(Settings().profiles_dir / "workflows")
    first = validate.compiled_validator(schema, registry)
    assert validate.compiled_validator(schema, registry) is first
    assert [i.diagnostics for i in validate.schema_issues({}, schema, registry)] == [
        "required: 'a' is a required property"
    ]


def test_structure_checks_can_be_left_out_while_profiles_still_apply():
    profiles = Settings().profiles_dir
    broken = {"resourceType": "Task", "status": "requested", "intent": "order", "for": "Patient/1"}
    assert validate.profile_issues(profiles, None, broken, "Task(t)")  # 'for' must be a Reference
    assert validate.profile_issues(profiles, None, broken, "Task(t)", structure=False) == []


# ---- adaptive paging -----------------------------------------------------------------------------


def test_views_ask_for_large_pages_until_the_server_shows_its_cap():
    limits = PagingLimits()
    assert limits.params() == [("_count", str(LARGE_PAGE))]
    limits.learn(LARGE_PAGE, Page([{}] * 150, [], 5000, f"{BASE}/Task?_count=1000&_offset=150"), True, False)
    assert limits.learned_max is None  # a filtered answer is smaller too: only the server's link tells
    limits.learn(LARGE_PAGE, Page([{}] * 200, [], 5000, f"{BASE}/Task?_count=200&_offset=200"), True, False)
    assert limits.learned_max == 200
    assert limits.params()[0] == ("_count", "200")
    assert PagingLimits(declared_max=300).params()[0] == ("_count", "300")
    assert limits.params(page_size=10)[0] == ("_count", "10")  # a size given by the caller is kept


def test_total_none_only_once_next_links_are_seen_to_work():
    limits = PagingLimits()
    assert ("_total", "none") not in limits.params()
    limits.learn(10, Page([{}] * 10, [], 30, None), True, False)  # more, but no next link
    assert limits.next_links is False
    assert ("_total", "none") not in limits.params()
    limits.learn(10, Page([{}] * 10, [], 30, "next"), True, False)
    assert ("_total", "none") in limits.params()
    assert ("_total", "none") not in limits.params(totals=True)


def test_elements_are_dropped_once_the_server_ignores_them():
    limits = PagingLimits()
    assert ("_elements", "for,status") in limits.params(elements=("for", "status"))
    limits.learn(10, Page([{"resourceType": "Task", "id": "1"}], [], 1, None), False, True)
    assert limits.elements is False
    assert all(name != "_elements" for name, _ in limits.params(elements=("for",)))


@responses.activate
def test_a_search_teaches_the_client_the_server_cap_and_next_links():
    responses.get(
        f"{BASE}/Task",
        match=[query_param_matcher({"_count": str(LARGE_PAGE)})],
        json=_searchset(100, total=150, next_url=f"{BASE}/Task?_count=100&_offset=100"),
    )
    responses.get(f"{BASE}/Task?_count=100&_offset=100", json=_searchset(50, total=150))
    client = FhirClient(BASE, retries=0)
    assert len(list(client.search("Task", client.paging.params()))) == 150
    assert (client.paging.learned_max, client.paging.next_links) == (100, True)
    assert client.paging.params() == [("_count", "100"), ("_total", "none")]


@pytest.mark.parametrize(
    "schema_path",
    sorted((Settings().profiles_dir / "workflows").glob("[!_]*.schema.json")),
    ids=lambda p: p.stem,
)
def test_an_inlined_schema_finds_what_the_referencing_one_finds(schema_path):
    registry = validate._registry(schema_path.parent)
    schema = validate.load_schema(schema_path)
    assert validate.inlined(schema, registry) is not schema  # every workflow schema inlines
    plain = jsonschema.Draft202012Validator(
        schema, registry=registry, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    fast = validate.compiled_validator(schema, registry)
    strange = {"patient": 7, "due": "not a date", "priority": "soon", "care_plan": "Plan/1", "extra": True}
    for document in (
        {},
        strange,
        {k: [] for k in schema.get("properties", {})},
        {k: "x" for k in schema.get("properties", {})},
    ):

        def found(validator):
            return sorted(
                (list(e.absolute_path), e.validator, e.message) for e in validator.iter_errors(document)
            )

        assert found(fast) == found(plain)


# ---- what an earlier release stamped ---------------------------------------------------------------


@responses.activate
@pytest.mark.parametrize(
    ("answer", "status", "holds"),
    [
        ({"resourceType": "Bundle", "type": "searchset"}, 200, False),
        (_searchset(1), 200, True),
        ({}, 400, True),
    ],
    ids=["none", "some", "cannot-tell"],
)
def test_the_server_is_asked_once_whether_it_holds_an_earlier_releases_request_ids(answer, status, holds):
    responses.get(
        f"{BASE}/Provenance",
        match=[query_param_matcher({"_tag": "urn:fhircare:request-id|", "_count": "1", "_elements": "id"})],
        json=answer,
        status=status,
    )
    client = FhirClient(BASE)
    assert client.holds_legacy_stamps() is holds
    assert client.holds_legacy_stamps() is holds
    assert len(responses.calls) == 1  # remembered, and kept for the next client of this server
    assert FhirClient(BASE).behaviour.legacy_stamps is holds


def test_request_id_criteria_name_one_system_where_no_earlier_stamps_are():
    from fhircare.mapping.entries import mark_request
    from fhircare.namespaces import Namespaces

    both = mark_request({"resourceType": "Task"}, "r1", "task", Namespaces())
    one = mark_request({"resourceType": "Task"}, "r1", "task", Namespaces(legacy=False))
    system = Namespaces().system("request-id")
    assert both == f"identifier={system}|r1/task,urn:fhircare:request-id|r1/task"
    assert one == f"identifier={system}|r1/task"


# ---- the lean send keeps what Session.send did --------------------------------------------------------


@responses.activate
def test_cookies_a_server_sets_go_back_and_response_hooks_still_apply():
    responses.get(f"{BASE}/Task/1", json={"resourceType": "Task", "id": "1"}, headers={"Set-Cookie": "lb=a1"})
    responses.get(f"{BASE}/Task/2", json={"resourceType": "Task", "id": "2"})
    client = FhirClient(BASE)
    seen = []
    client.session.hooks["response"].append(lambda response, **_: seen.append(response.url))
    client.read("Task", "1")
    client.read("Task", "2")
    assert responses.calls[1].request.headers["Cookie"] == "lb=a1"
    assert seen == [f"{BASE}/Task/1", f"{BASE}/Task/2"]


# ---- what a process asks a server once ---------------------------------------------------------------

_STATEMENT = {
    "resourceType": "CapabilityStatement",
    "status": "active",
    "kind": "instance",
    "fhirVersion": "4.0.1",
}


@responses.activate
def test_clients_of_one_process_share_a_servers_capability_statement():
    responses.get(f"{BASE}/metadata", json=_STATEMENT)
    FhirClient(BASE).capabilities()
    FhirClient(BASE).capabilities()  # the sidecar's next request: a new client, the same server
    assert len(responses.calls) == 1
    FhirClient(BASE).capabilities(refresh=True)
    assert len(responses.calls) == 2


@responses.activate
def test_the_include_probe_decides_on_any_of_ten_matches_that_point_somewhere():
    tasks = [
        {"resourceType": "Task", "id": "a"},
        {"resourceType": "Task", "id": "b", "focus": {"reference": "X/1"}},
    ]
    responses.get(
        f"{BASE}/Task",
        match=[query_param_matcher({"_include": "Task:focus", "_count": "10"})],
        json={
            "resourceType": "Bundle",
            "type": "searchset",
            "entry": [{"resource": t, "search": {"mode": "match"}} for t in tasks],
        },
    )
    client = FhirClient(BASE)
    assert client.include_works("Task", "Task:focus") is False  # b points at X/1, nothing was included
    assert client.behaviour.include == {"Task:Task:focus": False}
    assert len(responses.calls) == 1


@responses.activate
def test_stored_references_are_checked_when_the_transaction_sent_a_conditional_one():
    from fhircare.errors import UnresolvedStoredReference

    stored = {"resourceType": "Task", "id": "t1", "for": {"reference": "Patient?_id=1"}}
    answer = {
        "resourceType": "Bundle",
        "type": "transaction-response",
        "entry": [
            {"response": {"status": "201 Created", "location": "Task/t1/_history/1"}, "resource": stored}
        ],
    }
    responses.post(BASE, json=answer)
    client = FhirClient(BASE)

    def bundle(reference: str) -> dict[str, object]:
        task = {
            "resourceType": "Task",
            "status": "requested",
            "intent": "order",
            "for": {"reference": reference},
        }
        return {
            "type": "transaction",
            "entry": [{"resource": task, "request": {"method": "POST", "url": "Task"}}],
        }

    with pytest.raises(UnresolvedStoredReference):
        client.transaction(bundle("Patient?_id=1"))
    # nothing conditional was sent: the answer is not walked for what cannot be there
    assert client.transaction(bundle("Patient/1"))["entry"][0]["response"]["status"] == "201 Created"
