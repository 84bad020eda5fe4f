"""The search iterator is lazy: page 2 is fetched only when page 1 has been consumed."""

from __future__ import annotations

import pytest
import responses

from fhircare.errors import FhirServerError, NotFound
from fhircare.fhir import FhirClient

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
def test_a_next_link_to_another_host_is_refused_and_not_followed():
    client = FhirClient(BASE, retries=0)
    responses.get(f"{BASE}/Task", json=_page(["1"], "http://evil.test/r4/Task?page=2"))
    with pytest.raises(FhirServerError, match="outside the configured FHIR base"):
        list(client.search("Task"))
    assert len(responses.calls) == 1


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
