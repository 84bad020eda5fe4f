"""The performer's worklist (issue 21 item 7): referral Tasks a partner created on our server show in
``fhircare worklist --owner Organization/<us>`` with the patient's and requester's names read through
the absolute references, from the requester's server; nothing of them is written to disk. On both
partner pairs (the performer's server is the partner fixture's: embedded or Medplum's router)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from fhircare.exchange import send, work
from tests.exchange.conftest import World

FHIRCARE = str(Path(sys.executable).with_name("fhircare"))


def _worklist(world: World, tmp_path: Path, *args: str, partners: bool = True) -> list[dict[str, Any]]:
    """``fhircare worklist ... --format json`` at the performer (the partner's server)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FHIRCARE_")}
    env["FHIRCARE_CACHE_DIR"] = str(tmp_path / "cache")
    if partners:
        env["FHIRCARE_PARTNERS"] = str(tmp_path / "performer.yaml")
    answer = subprocess.run(
        [FHIRCARE, "--base", world.theirs.base_url, "worklist", *args, "--format", "json"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    printed = json.loads(answer.stdout)
    return printed["rows"] if isinstance(printed, dict) else printed


def _performer(world: World, tmp_path: Path) -> str:
    """The performer's partners file (the clinic, our server, as its partner); its own Organization."""
    us = world.theirs.create({"resourceType": "Organization", "name": "Food bank"})
    clinic = world.theirs.create({"resourceType": "Organization", "name": "Clinic"})
    document = {
        "self": {"base": world.theirs.base_url, "organization": f"Organization/{us['id']}"},
        "partners": {
            "clinic": {"organization": f"Organization/{clinic['id']}", "base": world.ours.base_url},
        },
    }
    (tmp_path / "performer.yaml").write_text(yaml.safe_dump(document), encoding="utf-8")
    return f"Organization/{us['id']}"


def test_incoming_referrals_show_in_the_performers_worklist_with_names(world: World, tmp_path: Path) -> None:
    task_id, _ = world.refer()
    send(world.exchange, task_id)
    remote_id = world.remote_of(task_id)["id"]
    us = _performer(world, tmp_path)
    family = world.ours.read_reference(world.patient)["name"][0]["family"]

    rows = {row["task"]: row for row in _worklist(world, tmp_path, "--owner", us)}
    row = rows[f"Task/{remote_id}"]
    assert row["patient"] == f"{world.ours.base_url}/{world.patient}"
    assert family in row["patient_name"]
    assert row["requester"] == f"{world.ours.base_url}/{world.coordinator}"
    assert "Coord" in row["requester_name"]
    assert row["status"] == "requested"

    work(world.theirs, remote_id, "accepted")
    rows = {row["task"]: row for row in _worklist(world, tmp_path, "--owner", us, "--status", "accepted")}
    assert rows[f"Task/{remote_id}"]["status"] == "accepted"
    assert family in rows[f"Task/{remote_id}"]["patient_name"]
    # another owner's worklist does not get them; nothing of the names reached the disk
    assert f"Task/{remote_id}" not in {r["task"] for r in _worklist(world, tmp_path, "--owner", world.org)}
    cached = [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]
    assert all(family not in p.read_text(encoding="utf-8", errors="replace") for p in cached)


def test_without_partners_the_worklist_is_unchanged(world: World, tmp_path: Path) -> None:
    task_id, _ = world.refer()
    send(world.exchange, task_id)
    remote_id = world.remote_of(task_id)["id"]
    us = _performer(world, tmp_path)
    assert f"Task/{remote_id}" not in {
        r["task"] for r in _worklist(world, tmp_path, "--owner", us, partners=False)
    }
    everyone = {r["task"]: r for r in _worklist(world, tmp_path, partners=False)}
    assert everyone[f"Task/{remote_id}"]["patient_name"] == ""  # no partner to read it from
    assert not everyone[f"Task/{remote_id}"]["requester_name"]


def test_the_incoming_search_asks_the_server_only_for_tasks_another_organization_sent(
    world: World, tmp_path: Path, partner_server: Any
) -> None:
    """The filter on the RFC 3986 identifier is the server's: the performer's own open Tasks (none with
    such an identifier) never travel, however many there are; one search, no read per Task."""
    from fhircare.exchange import Exchange, parse_partners
    from fhircare.exchange.incoming import incoming_tasks
    from fhircare.fhir import FhirClient
    from fhircare.settings import Settings

    task_id, _ = world.refer()
    send(world.exchange, task_id)
    remote_id = world.remote_of(task_id)["id"]
    _performer(world, tmp_path)
    own = {"resourceType": "Task", "status": "requested", "intent": "order", "description": "our own"}
    unrelated = {world.theirs.create(own)["id"] for _ in range(30)}
    unrelated.add(world.theirs.create({**own, "identifier": [{"system": "urn:other", "value": "x"}]})["id"])
    document = yaml.safe_load((tmp_path / "performer.yaml").read_text(encoding="utf-8"))
    settings = Settings.from_env({}, base_url=world.theirs.base_url)
    with FhirClient(world.theirs.base_url) as local:
        sent: list[dict[str, Any]] = []  # every Task the server answered with
        pages: list[str] = []
        ask = local.request

        def watched(method: str, path: str, **kwargs: Any) -> Any:
            response = ask(method, path, **kwargs)
            pages.append(path)
            sent.extend(e.get("resource") or {} for e in response.json().get("entry") or [])
            return response

        local.request = watched  # type: ignore[method-assign]
        exchange = Exchange(settings, parse_partners(document, str(tmp_path / "performer.yaml")), local)
        start = partner_server.counter.count
        found = {task["id"]: origin for task, origin in incoming_tasks(exchange)}
        requests = partner_server.counter.count - start
    assert found[remote_id] == f"{world.ours.base_url}/Task/{task_id}"
    assert not unrelated & {r.get("id") for r in sent}  # never sent by the server
    assert all(any(i.get("system") == "urn:ietf:rfc:3986" for i in r["identifier"]) for r in sent)
    assert len(sent) == len(found)  # nothing left for Python to filter out
    assert requests == len(pages)  # search pages only, no read per Task


def _incoming_task(world: World, patient_url: str, requester_url: str, description: str) -> None:
    """A Task on our server posing as a partner's referral (anyone with Task create can write one)."""
    world.ours.create(
        {
            "resourceType": "Task",
            "status": "requested",
            "intent": "order",
            "identifier": [
                {"system": "urn:ietf:rfc:3986", "value": f"{world.proxy.base_url}/Task/{description}"}
            ],
            "for": {"reference": patient_url},
            "requester": {"reference": requester_url},
            "description": description,
        }
    )


def test_only_partner_people_by_id_are_read_the_rest_is_unknown_without_a_request(world: World) -> None:
    """Only ``<partner base>/<Patient|Practitioner|PractitionerRole|Organization>/<id>`` is read (one
    batch for the partner); a search, a history, an operation, another type or an id no FHIR id can be
    is shown as ``unknown`` and never asked for."""
    from fhircare.exchange.incoming import incoming

    base = world.proxy.base_url.rstrip("/")
    patient = world.theirs.create({"resourceType": "Patient", "name": [{"family": "Readable"}]})
    org = world.theirs.create({"resourceType": "Organization", "name": "Partner org"})
    _incoming_task(world, f"{base}/Patient/{patient['id']}", f"{base}/Organization/{org['id']}", "real")
    posing = [
        f"{base}/Organization?_lastUpdated=notadate&_count=abc",
        f"{base}/Patient/{patient['id']}/_history/1",
        f"{base}/Patient/$everything",
        f"{base}/Observation/{patient['id']}",
        f"{base}/Patient/{'x' * 65}",
        f"{base}/Patient/a b",
        f"{base}/Patient/",
    ]
    for n, url in enumerate(posing):
        _incoming_task(world, url, url, f"posing{n}")
    world.proxy.log.seen.clear()
    rows = {row["description"]: row for row in incoming(world.exchange)}
    assert rows["real"]["patient"] == "Readable" and rows["real"]["requester"] == "Partner org"
    for n in range(len(posing)):
        assert rows[f"posing{n}"]["patient"] == rows[f"posing{n}"]["requester"] == "unknown"
    assert [(method, what) for method, _, what in world.proxy.log.seen] == [("POST", "forward")]


def test_a_partner_failing_the_names_batch_leaves_them_unknown_and_the_listing_whole(
    world: World, caplog: Any
) -> None:
    """The partner fails the one names batch (503 past the retries): those names are ``unknown``, the
    listing is whole, and the log names the partner, not the people."""
    import logging

    from fhircare.exchange.incoming import incoming

    base = world.proxy.base_url.rstrip("/")
    patient = world.theirs.create({"resourceType": "Patient", "name": [{"family": "Secretfamily"}]})
    _incoming_task(world, f"{base}/Patient/{patient['id']}", f"{base}/Patient/{patient['id']}", "failed")
    world.proxy.inject("503", method="POST", times=20)
    with caplog.at_level(logging.INFO, logger="fhircare"):
        rows = {row["description"]: row for row in incoming(world.exchange)}
    assert rows["failed"]["patient"] == "unknown"
    assert "partner names not read" in caplog.text
    assert "Secretfamily" not in caplog.text and patient["id"] not in caplog.text
