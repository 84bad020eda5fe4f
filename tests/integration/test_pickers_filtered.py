"""Issue 22, item 3 (pickers): a payer picker offers only payers, a ride's vendor picker only transport
vendors; any other organization is chosen apart, under *Another organization*, so a valid organization
not typed yet is still reachable (the workflows accept any Organization there).

A payer: an Organization typed ``pay`` or ``ins`` (http://terminology.hl7.org/CodeSystem/organization-type)
or the payor of one of the latest coverages. A transport vendor: an Organization providing a
HealthcareService of the ride's service type, or the performer of one of the latest rides."""

from __future__ import annotations

from datetime import timedelta

import requests

from fhircare.web.pickers import LIMIT, ORG_TYPE, role_organizations
from fhircare.workflows import run
from tests.support.cases import active_coverage, basics, booked_appointment, make
from tests.support.clock import moment
from tests.support.console import hidden

#: the ride's service type (mappings/codes/services.yaml: transportation)
RIDE = ("http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets", "T2003")


def typed(client, name: str, code: str) -> str:
    kind = {"coding": [{"system": ORG_TYPE, "code": code}]}
    return make(client, {"resourceType": "Organization", "name": name, "type": [kind]})


def picker(html: str, name: str) -> str:
    """The options of the select named ``name``."""
    return html.split(f'name="{name}"', 1)[1].split("</select>", 1)[0]


def a_ride(client, b: dict[str, str], uid: str, vendor: str) -> None:
    run(
        "transport",
        {
            "patient": b["patient"],
            "appointment": booked_appointment(client, b, uid),
            "vendor": vendor,
            "requester": b["coordinator"],
            "when": (moment(3, "10:00") - timedelta(minutes=45)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
        client,
    )


def test_the_payer_picker_offers_payers_only_and_another_organization_apart(
    dev, client, uid, server_requests
):
    # a busy server: more organizations than a picker lists
    crowd = [
        {
            "request": {"method": "POST", "url": "Organization"},
            "resource": {"resourceType": "Organization", "name": f"Crowd {n}"},
        }
        for n in range(LIMIT + 1)
    ]
    client.transaction({"resourceType": "Bundle", "type": "transaction", "entry": crowd})
    b = basics(client, uid)
    active_coverage(client, b)  # b["payer"], not typed, pays a coverage
    payer, insurer = typed(client, f"Plan{uid}", "pay"), typed(client, f"Insurer{uid}", "ins")
    school = typed(client, f"School{uid}", "edu")
    vendor = make(client, {"resourceType": "Organization", "name": f"Rides{uid}"})
    a_ride(client, b, uid, vendor)

    start = server_requests()
    payers = {r["reference"] for r in role_organizations(client, "payer")}
    assert server_requests() - start == 2  # one batch of searches, one batch reading the untyped payor
    assert {payer, insurer, b["payer"]} <= payers and not {school, vendor, b["org"]} & payers

    pid = b["patient"].split("/")[1]
    url = f"{dev.url}/patients/{pid}/do/coverage-check"
    browser = requests.Session()
    form = browser.get(url).text
    offered = picker(form, "payor")
    for ref in (payer, insurer, b["payer"]):
        assert f'value="{ref}"' in offered
    for ref in (school, vendor, b["org"]):
        assert f'value="{ref}"' not in offered
    assert "<optgroup" not in offered  # filtered, not ordered
    assert "Not listed? Another organization" in form
    others = picker(form, "payor:other")
    assert f'value="{payer}"' not in others and f'value="{b["payer"]}"' not in others
    # the way out searches every organization by name
    found = browser.get(f"{dev.url}/api/v1/lookup", params={"type": "Organization", "name": f"School{uid}"})
    assert [c["reference"] for c in found.json()] == [school]

    # a coverage with a payer not (yet) typed: chosen under "Another organization"
    data = {
        **hidden(form),
        "payor": "",
        "payor:other": school,
        "subscriber_id": f"M{uid}",
        "service": "diabetes-education",
        "date": moment(1, "09:00").date().isoformat(),
        "requester": b["coordinator"],
    }
    sent = browser.post(url, data=data, allow_redirects=False)
    assert sent.status_code == 303, sent.text[:2000]
    coverages = list(client.search("Coverage", {"beneficiary": b["patient"]}))
    assert sorted(c["payor"][0]["reference"] for c in coverages) == sorted([b["payer"], school])

    # both chosen: the one chosen apart wins (the page's script clears the other)
    again = browser.get(url).text
    both = {**data, **hidden(again), "payor": payer, "payor:other": insurer, "subscriber_id": f"N{uid}"}
    assert browser.post(url, data=both, allow_redirects=False).status_code == 303
    [second] = [c for c in client.search("Coverage", {"beneficiary": b["patient"]}) if f"N{uid}" in str(c)]
    assert second["payor"][0]["reference"] == insurer


def test_the_vendor_picker_offers_transport_vendors_only(dev, client, uid, server_requests):
    b = basics(client, uid)
    provider = make(client, {"resourceType": "Organization", "name": f"Vans{uid}"})
    make(
        client,
        {
            "resourceType": "HealthcareService",
            "active": True,
            "name": f"Van service {uid}",
            "providedBy": {"reference": provider},
            "type": [{"coding": [{"system": RIDE[0], "code": RIDE[1]}]}],
        },
    )
    pantry = make(client, {"resourceType": "Organization", "name": f"Pantry{uid}"})
    make(
        client,
        {
            "resourceType": "HealthcareService",
            "active": True,
            "name": f"Pantry {uid}",
            "providedBy": {"reference": pantry},
            "type": [{"coding": [{"system": "http://snomed.info/sct", "code": "467771000124109"}]}],
        },
    )
    driver = make(client, {"resourceType": "Organization", "name": f"Driver{uid}"})
    a_ride(client, b, uid, driver)  # performed a ride, provides no service on file
    active_coverage(client, b)

    client.include_works("HealthcareService", "HealthcareService:organization")  # learned once per server
    start = server_requests()
    vendors = {r["reference"] for r in role_organizations(client, "vendor", RIDE)}
    assert server_requests() - start == 2  # one batch of searches, one batch of reads
    assert {provider, driver} <= vendors and not {pantry, b["payer"], b["org"]} & vendors

    pid = b["patient"].split("/")[1]
    form = requests.get(f"{dev.url}/patients/{pid}/do/transport", timeout=30).text
    offered = picker(form, "vendor")
    assert f'value="{provider}"' in offered and f'value="{driver}"' in offered
    for ref in (pantry, b["payer"], b["org"]):
        assert f'value="{ref}"' not in offered
    assert "not marked as a transport vendor" in form


def test_who_am_i_reaches_any_number_of_practitioners_by_name_and_page(dev, client, uid, server_requests):
    from fhircare.web.pickers import find_practitioners
    from tests.integration.test_console_patients import letters

    family = f"Many{letters(uid)}"
    crowd = [
        {
            "request": {"method": "POST", "url": "Practitioner"},
            "resource": {
                "resourceType": "Practitioner",
                "name": [{"family": family, "given": [f"G{n:02d}"]}],
            },
        }
        for n in range(45)
    ]
    client.transaction({"resourceType": "Bundle", "type": "transaction", "entry": crowd})

    start = server_requests()
    first, more = find_practitioners(client, family, 1)
    assert server_requests() - start == 1  # a page and one more match: whether another page follows
    assert [r["label"] for r in first] == [f"G{n:02d} {family}" for n in range(20)] and more
    start = server_requests()
    last, more = find_practitioners(client, family, 3)
    assert server_requests() - start <= 3  # page n costs the requests of pages 1..n
    assert [r["label"] for r in last] == [f"G{n:02d} {family}" for n in range(40, 45)] and not more

    browser = requests.Session()
    page = browser.get(f"{dev.url}/me", params={"q": family, "page": "3"}).text
    chosen = last[-1]["reference"]
    assert page.count('name="me" value="Practitioner/') == 5 and 'rel="next"' not in page
    token = page.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    assert (
        browser.post(f"{dev.url}/me", data={"csrf": token, "me": chosen}, allow_redirects=False).status_code
        == 303
    )
    header = browser.get(f"{dev.url}/").text.split('id="me"', 1)[1].split("</select>", 1)[0]
    assert f'value="{chosen}" selected' in header
