"""Issue 22 item 2 with the exchange (issue 21): the patient page's referrals say the partner's status and
when it was last synced, "not sent", or "unreachable since …"; the console worklist of an organization
that receives referrals lists the partners' incoming referrals with the requester's name, and never
links their patient (who lives on the partner's server) to a patient page here. Real exchange between
two servers, on both partner pairs (embedded-embedded, embedded-Medplum)."""

from __future__ import annotations

import re
from pathlib import Path

import requests
import yaml

from fhircare.exchange import send, sync_once, work
from fhircare.exchange.links import read_link
from fhircare.settings import Settings
from tests.exchange import conftest as two_organizations
from tests.exchange.conftest import World
from tests.integration.sidecar_harness import Sidecar

# the exchange's fixtures: our server, the partner's (embedded or Medplum's router) behind the fault proxy
our_server = two_organizations.our_server
partner_server = two_organizations.partner_server
proxy = two_organizations.proxy
world = two_organizations.world


def _cell(html: str, task: str) -> str:
    row = html.split(f'data-referral="{task}"', 1)[1].split("</tr>", 1)[0]
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", row))


def _page(world: World) -> str:
    settings = Settings(base_url=world.ours.base_url, partners_file=world.partners_file)
    with Sidecar(settings) as sidecar:
        answer = requests.get(f"{sidecar.url}/patients/{world.patient.split('/')[1]}", timeout=30)
    assert answer.status_code == 200, answer.text[-1500:]
    return answer.text


def test_referrals_say_the_partners_status_when_synced_and_not_sent(world: World) -> None:
    sent, _ = world.refer("sent one")
    send(world.exchange, sent)
    work(world.theirs, world.remote_of(sent)["id"], "accepted")
    assert sync_once(world.exchange, world.partner)["partners"][world.partner]["reachable"] is True
    unsent, _ = world.refer("not sent one")  # after the sync (a sync sends what is unsent)
    link = read_link(world.ours.read("Task", sent), world.exchange.namespace_base)
    assert link is not None and link.remote_status == "accepted" and link.synced_at
    html = _page(world)
    synced = link.synced_at[11:16]  # the console's zone is UTC here
    assert f"partner: accepted · synced {synced} UTC" in _cell(html, f"Task/{sent}")
    assert "not sent" in _cell(html, f"Task/{unsent}")
    assert "partner:" not in _cell(html, f"Task/{unsent}")


def test_a_partner_down_is_said_with_since_when(world: World) -> None:
    sent, _ = world.refer()
    send(world.exchange, sent)
    world.proxy.inject("503", times=1000)
    assert sync_once(world.exchange, world.partner)["partners"][world.partner]["reachable"] is False
    world.proxy.clear()
    cell = _cell(_page(world), f"Task/{sent}")
    assert "unreachable since" in cell and "partner: accepted" not in cell


def test_the_receiving_worklist_lists_incoming_referrals_named_and_never_linked_here(
    world: World, tmp_path: Path
) -> None:
    task_id, _ = world.refer()
    send(world.exchange, task_id)
    remote = world.remote_of(task_id)
    us = world.theirs.create({"resourceType": "Organization", "name": "Food bank"})
    clinic = world.theirs.create({"resourceType": "Organization", "name": "Clinic"})
    document = {
        "self": {"base": world.theirs.base_url, "organization": f"Organization/{us['id']}"},
        "partners": {"clinic": {"organization": f"Organization/{clinic['id']}", "base": world.ours.base_url}},
    }
    (tmp_path / "performer.yaml").write_text(yaml.safe_dump(document), encoding="utf-8")
    family = world.ours.read_reference(world.patient)["name"][0]["family"]
    settings = Settings(base_url=world.theirs.base_url, partners_file=tmp_path / "performer.yaml")
    with Sidecar(settings) as sidecar:
        html = requests.get(f"{sidecar.url}/?tab=unassigned&page_size=100", timeout=30).text
        plain = requests.get(f"{sidecar.url}/?tab=team&page_size=100", timeout=30).text
    for page in (html, plain):
        row = page.split(f'data-task="Task/{remote["id"]}"', 1)[1].split("</tr>", 1)[0]
        assert 'data-incoming="1"' in page.split(f'data-task="Task/{remote["id"]}"', 1)[0][-200:] + row[:40]
        assert family in row
        assert "from " in row and "Coord" in row  # the requester, named on the clinic's server
        assert "/patients/" not in row  # the patient lives on the clinic's server: no page of ours


def test_a_conflict_is_said_with_both_statuses(world: World) -> None:
    from dataclasses import replace

    from fhircare.exchange.links import Conflict, write_link

    sent, _ = world.refer()
    send(world.exchange, sent)
    ours = world.ours.read("Task", sent)
    link = read_link(ours, world.exchange.namespace_base)
    assert link is not None
    clash = Conflict("cancelled", "3", "completed", "4")  # what sync records when both sides moved
    written = write_link(ours, replace(link, conflict=clash), world.exchange.namespace_base)
    world.ours.update(written, if_match=ours["meta"]["versionId"])
    cell = _cell(_page(world), f"Task/{sent}")
    assert "conflict: the partner says completed, we say cancelled" in cell
