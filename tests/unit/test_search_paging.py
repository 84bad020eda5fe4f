"""The search iterator is lazy: page 2 is fetched only when page 1 has been consumed."""

from __future__ import annotations

import pytest
import responses
from responses.matchers import query_string_matcher

from fhircare.errors import FhirServerError, NotFound
from fhircare.fhir import FhirClient
from fhircare.fhir.behaviour import BehaviourStore

BASE = "http://fhir.test/r4"


def _page(ids, next_url=None, included=()):
    entries = [{"resource": {"resourceType": "Task", "id": i}, "search": {"mode": "match"}} for i in ids]
    entries += [{"resource": r, "search": {"mode": "include"}} for r in included]
    links = [{"relation": "next", "url": next_url}] if next_url else []
    return {"resourceType": "Bundle", "type": "searchset", "link": links, "entry": entries}


@responses.activate
def test_page_two_is_fetched_only_after_page_one_is_consumed():
    client = FhirClient(BASE, retries=0)
    responses.get(f"{BASE}/Task", json=_page(["1", "2"], f"{BASE}/Task?_offset=2"))
    responses.get(f"{BASE}/Task?_offset=2", json=_page(["3"]))
    tasks = iter(client.search("Task", {"_count": 2}))
    assert next(tasks)["id"] == "1"
    assert next(tasks)["id"] == "2"
    assert len(responses.calls) == 1
    assert [t["id"] for t in tasks] == ["3"]
    assert len(responses.calls) == 2


@responses.activate
def test_included_resources_go_to_the_page_not_to_the_matches():
    client = FhirClient(BASE, retries=0)
    patient = {"resourceType": "Patient", "id": "p"}
    responses.get(f"{BASE}/Task", json=_page(["1"], included=[patient]))
    page = next(client.search("Task").pages())
    assert [m["id"] for m in page.matches] == ["1"]
    assert page.by_reference()["Patient/p"] == patient
    assert [t["id"] for t in client.search("Task")] == ["1"]


@responses.activate
def test_a_next_link_outside_the_base_path_is_refused_and_not_followed():
    client = FhirClient(BASE, retries=0)
    responses.get(f"{BASE}/Task", json=_page(["1"], "http://evil.test/other/Task?page=2"))
    with pytest.raises(FhirServerError, match="outside the configured FHIR base"):
        list(client.search("Task"))
    assert len(responses.calls) == 1


@responses.activate
def test_a_next_link_naming_an_inner_address_is_rebased_onto_the_configured_base():
    """Behind a reverse proxy the server names its own address; the path continues the base path, so
    the link is followed on the configured origin (the request and its credentials never go elsewhere)."""
    client = FhirClient(BASE, retries=0, headers={"Authorization": "Bearer secret"})
    responses.get(f"{BASE}/Task", json=_page(["1"], "http://10.0.0.7:8080/r4/Task?page=2"))
    responses.get(f"{BASE}/Task?page=2", json=_page(["2"]))
    assert [t["id"] for t in client.search("Task")] == ["1", "2"]
    assert [c.request.url for c in responses.calls] == [f"{BASE}/Task", f"{BASE}/Task?page=2"]


@responses.activate
def test_a_relative_next_link_is_joined_to_the_base():
    client = FhirClient(BASE, retries=0)
    responses.get(f"{BASE}/Task", json=_page(["1"], "Task?page=2"))
    responses.get(f"{BASE}/Task?page=2", json=_page(["2"]))
    assert [t["id"] for t in client.search("Task")] == ["1", "2"]


def _counted(ids, total):
    return {**_page(ids), "total": total}


@responses.activate
def test_a_total_beyond_what_came_back_without_next_link_is_fetched_by_offset():
    client = FhirClient(BASE, retries=0)
    responses.get(f"{BASE}/Task", json=_counted(["1", "2"], 5), match=[query_string_matcher("_count=2")])
    responses.get(
        f"{BASE}/Task", json=_counted(["3", "4"], 5), match=[query_string_matcher("_count=2&_offset=2")]
    )
    responses.get(f"{BASE}/Task", json=_counted(["5"], 5), match=[query_string_matcher("_count=2&_offset=4")])
    search = client.search("Task", {"_count": 2})
    assert [t["id"] for t in search] == ["1", "2", "3", "4", "5"]
    assert len(responses.calls) == 3 and not search.truncated


@responses.activate
def test_a_server_that_ignores_offset_is_reported_truncated_not_cut_silently(caplog):
    client = FhirClient(BASE, retries=0, behaviour_store=BehaviourStore(None))  # what it learns stays here
    responses.get(f"{BASE}/Task", json=_counted(["1", "2"], 5))
    search = client.search("Task", {"_count": 2})
    assert [t["id"] for t in search] == ["1", "2"]
    assert search.truncated
    assert "truncated" in caplog.text
    assert client.behaviour.offset_paging is False


@responses.activate
def test_without_a_total_a_full_page_asks_for_the_next_offset_once():
    client = FhirClient(BASE, retries=0)
    responses.get(f"{BASE}/Task", json=_page(["1", "2"]), match=[query_string_matcher("_count=2")])
    responses.get(f"{BASE}/Task", json=_page([]), match=[query_string_matcher("_count=2&_offset=2")])
    assert [t["id"] for t in client.search("Task", {"_count": 2})] == ["1", "2"]
    assert len(responses.calls) == 2


def test_chained_searches_do_not_change_the_original():
    client = FhirClient(BASE)
    base = client.search("Task", {"status": "requested"})
    narrowed = base.where(owner="Practitioner/1").include("Task:patient").count(5)
    assert base.params == (("status", "requested"),)
    assert narrowed.params == (
        ("status", "requested"),
        ("owner", "Practitioner/1"),
        ("_include", "Task:patient"),
        ("_count", "5"),
    )


@responses.activate
def test_get_means_exactly_one():
    client = FhirClient(BASE, retries=0)
    responses.get(f"{BASE}/Task", json=_page([]))
    with pytest.raises(NotFound):
        client.search("Task").get()
    responses.replace(responses.GET, f"{BASE}/Task", json=_page(["1", "2"]))
    with pytest.raises(FhirServerError, match="more than one"):
        client.search("Task").get()
