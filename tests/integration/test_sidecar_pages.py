"""The coordinator's pages in dev mode: each renders what the server holds, with local assets only."""

from __future__ import annotations

import re

import requests

from fhircare.workflows import run
from tests.integration.sidecar_harness import Sidecar
from tests.integration.test_prior_auth_decision import _pas_response
from tests.support.cases import make, prior_auth_case
from tests.support.clock import day


def _page(dev: Sidecar, path: str, **params: str) -> str:
    answer = requests.get(f"{dev.url}{path}", params=params, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"].startswith("text/html")
    html = answer.text
    # every asset and link stays on this host: no CDN, no absolute URLs
    for url in re.findall(r'(?:src|href)="([^"]+)"', html):
        assert url.startswith("/") or url.startswith("?"), url
    return html


def test_every_page_shows_what_the_server_holds(dev, client, uid):
    payload = prior_auth_case(client, uid).payload
    me = make(client, {"resourceType": "Practitioner", "name": [{"family": f"Coord{uid}"}]})
    patient_name = client.read_reference(payload["patient"])["name"][0]["family"]
    written = run("prior-auth", {**payload, "provider": me}, client).written
    claim = next(r for r in written if r.startswith("Claim/"))
    make(client, _pas_response(payload["patient"], claim, "A1", number=f"OK-{uid}"))
    follow_up = run(
        "follow-up",
        {
            "patient": payload["patient"],
            "about": payload["service_request"],
            "owner": me,
            "due": day(-327),
            "note": "Call back",
        },
        client,
    ).written
    task = next(r for r in follow_up if r.startswith("Task/"))

    worklist = _page(dev, "/", owner=me)
    assert f'data-task="{task}"' in worklist and patient_name in worklist and "overdue" in worklist

    summary = _page(dev, f"/patients/{payload['patient'].split('/')[1]}")
    assert '<h2 id="pa">Prior authorizations</h2>' in summary
    assert "Approved" in summary and f"OK-{uid}" in summary

    authorizations = _page(dev, "/authorizations", requester=me)
    assert authorizations.count("data-task=") == 1 and "Record answer" in authorizations

    gaps = _page(dev, "/gaps", patient=payload["patient"])
    assert "Overdue task" in gaps

    assert "<h1>Caseload" in _page(dev, "/caseload")


def test_the_caseload_page_shows_a_roles_tasks_on_the_persons_row_by_name(dev, client, uid):
    from tests.integration.test_gaps_and_caseload import _roles_world

    w = _roles_world(client, uid)
    html = _page(dev, "/caseload")
    table = html.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    assert table.count(f"<td>Lee Fold{uid}</td>") == 1
    assert w["role"] not in html and w["person"] not in table
    assert f"<td>Intake at Hub{uid}</td>" in table and f"<td>Team{uid}</td>" in table
