"""Issue 22, item 3 (prior authorization): the request form offers only the services and categories the
workflow accepts and asks nothing of the decision (recorded from the authorizations page); sent from
the page it writes the Claim and the Task."""

from __future__ import annotations

import re

import requests

from fhircare.settings import Settings
from fhircare.workflows import mappings_for
from tests.support.cases import prior_auth_case


def options(html: str, name: str) -> list[str]:
    select = html.split(f'name="{name}"', 1)[1].split("</select>", 1)[0]
    return [v for v in re.findall(r'<option value="([^"]*)"', select) if v]


def test_the_request_form_offers_what_the_workflow_accepts_and_writes_the_request(dev, client, uid):
    payload = prior_auth_case(client, uid).payload
    pid = payload["patient"].split("/")[1]
    browser = requests.Session()
    form = browser.get(f"{dev.url}/patients/{pid}/do/prior-auth").text
    codes = mappings_for(Settings(base_url=dev.url)).codes
    assert options(form, "service") == list(codes["prior-auth-services"])
    assert options(form, "category") == list(codes["prior-auth-categories"])
    assert "transportation" not in options(form, "service")
    for decision_field in ('name="claim_response"', 'name="action"', 'name="task"'):
        assert decision_field not in form
    hidden = dict(re.findall(r'<input type="hidden" name="(csrf|request_id)" value="([^"]+)"', form))
    data = {k: v for k, v in payload.items() if isinstance(v, str) and k != "patient"}
    sent = browser.post(
        f"{dev.url}/patients/{pid}/do/prior-auth", data={**hidden, **data}, allow_redirects=False
    )
    assert sent.status_code == 303, sent.text[-2000:]
    claims = list(client.search("Claim", {"patient": payload["patient"], "use": "preauthorization"}))
    assert len(claims) == 1 and claims[0]["insurance"][0]["coverage"]["reference"] == payload["coverage"]
