"""Issue 22, item 3 (rides): the ride form takes its pick-up time from the chosen appointment; a second
ride to the same appointment, or a pick-up days before it, is asked about before anything is written."""

from __future__ import annotations

import re
from datetime import timedelta

import requests

from tests.support.cases import basics, booked_appointment, make
from tests.support.clock import local, moment
from tests.support.console import hidden


def rides_to(client, patient: str, appointment: str) -> list[dict]:
    return [
        r
        for r in client.search("ServiceRequest", {"patient": patient})
        if appointment in [i.get("reference") for i in r.get("supportingInfo") or []]
    ]


def test_the_ride_is_timed_by_its_appointment_and_a_second_ride_is_asked_about(dev, client, fhir_server, uid):
    b = basics(client, uid)
    appointment = booked_appointment(client, b, uid)  # three days ahead at 10:00 (UTC)
    vendor = make(client, {"resourceType": "Organization", "name": f"Rides{uid}"})
    pid = b["patient"].split("/")[1]
    url = f"{dev.url}/patients/{pid}/do/transport"
    browser = requests.Session()
    form = browser.get(url, params={"appointment": appointment}).text
    proposed = re.search(r'name="when" value="([^"]+)"', form).group(1)
    assert proposed == (moment(3, "10:00") - timedelta(minutes=45)).strftime("%Y-%m-%dT%H:%M")
    data = {
        **hidden(form),
        "appointment": appointment,
        "vendor": vendor,
        "requester": b["coordinator"],
        "when": proposed,
        "pickup": "Home",
    }
    assert browser.post(url, data=data, allow_redirects=False).status_code == 303
    assert len(rides_to(client, b["patient"], appointment)) == 1

    # a second ride for the same appointment, days early: asked, nothing written
    again = browser.get(url, params={"appointment": appointment, "new": "1"}).text
    early = {**data, **hidden(again), "when": local(0, "09:00")}
    before = fhir_server.resource_counts()
    asked = browser.post(url, data=early)
    assert asked.status_code == 422
    at_appointment = asked.text.split('data-field="appointment"', 1)[1].split("</p>", 1)[0]
    at_when = asked.text.split('data-field="when"', 1)[1].split("</p>", 1)[0]
    assert "already arranged" in at_appointment and "3 days before the appointment" in at_when
    assert fhir_server.resource_counts() == before
    confirmed = browser.post(url, data={**early, "confirm": "1"}, allow_redirects=False)
    assert confirmed.status_code == 303
    assert len(rides_to(client, b["patient"], appointment)) == 2
