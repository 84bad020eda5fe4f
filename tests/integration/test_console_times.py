"""Issue 22, item 6: times in the coordinator's zone (FHIRCARE_TIMEZONE), labelled; a time typed into a
form is read in that zone and stored as the instant it names. An unknown zone refuses to start."""

from __future__ import annotations

import re
from zoneinfo import ZoneInfo

import pytest
import requests

from fhircare.errors import ConfigurationError
from fhircare.settings import Settings
from fhircare.web import create_app
from fhircare.workflows import run
from tests.integration.sidecar_harness import Sidecar
from tests.support.cases import basics, referral_payload
from tests.support.clock import at, local, moment

ZONE = "America/Chicago"


def test_the_console_shows_and_reads_times_in_its_zone(fhir_server, client, uid):
    b = basics(client, uid)
    referral = run("refer", referral_payload(b, uid), client).written[0]
    run(
        "schedule",
        {
            "action": "book",
            "patient": b["patient"],
            "referral": referral,
            "start": at(3, "15:00"),
            "minutes": 30,
            "practitioner": b["coordinator"],
        },
        client,
    )
    pid = b["patient"].split("/")[1]
    shown = moment(3, "15:00").astimezone(ZoneInfo(ZONE))
    with Sidecar(Settings(base_url=fhir_server.base_url, timezone=ZONE)) as dev:
        browser = requests.Session()
        page = browser.get(f"{dev.url}/patients/{pid}").text
        assert f"{shown:%Y-%m-%d %H:%M} {shown.tzname()}" in page

        form = browser.get(f"{dev.url}/patients/{pid}/do/schedule").text
        assert f"({ZONE} time)" in form
        hidden = dict(re.findall(r'<input type="hidden" name="(csrf|request_id)" value="([^"]+)"', form))
        typed = local(6, "09:30")  # what the coordinator types: 09:30 in Chicago
        sent = browser.post(
            f"{dev.url}/patients/{pid}/do/schedule",
            data={
                **hidden,
                "action": "book",
                "referral": referral,
                "start": typed,
                "minutes": "30",
                "practitioner": b["coordinator"],
            },
            allow_redirects=False,
        )
        assert sent.status_code == 303, sent.text[-2000:]
    meant = moment(6, "09:30").replace(tzinfo=ZoneInfo(ZONE))
    booked = [a for a in client.search("Appointment", {"patient": b["patient"]}) if a["status"] == "booked"]
    starts = sorted(a["start"] for a in booked)
    assert any(
        s.replace("Z", "+00:00").startswith(meant.astimezone(ZoneInfo("UTC")).strftime("%Y-%m-%dT%H:%M"))
        for s in starts
    ), starts


def test_an_unknown_zone_refuses_to_start(fhir_server):
    with pytest.raises(ConfigurationError, match="FHIRCARE_TIMEZONE"):
        create_app(Settings(base_url=fhir_server.base_url, timezone="Mars/Olympus"))
