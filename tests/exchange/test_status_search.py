"""``exchange status`` asks our server only for the Tasks sent to each partner (an identifier written with
the link, ``<namespace>/sid/exchange-sent-to|<partner>``), not for everything the partner owns; links an
older version wrote without it get it in the next cycle's one pass over the partner's Tasks. On both
partner pairs (our server is the embedded one)."""

from __future__ import annotations

from typing import Any

from fhircare.exchange import referrals, send, sync_once
from fhircare.exchange.cursor import STATE, load_cursor, save_once
from fhircare.server import EmbeddedServer
from tests.exchange.conftest import World


def _unsent(world: World, count: int) -> None:
    """``count`` draft Tasks owned by the partner's Organization (never sent: sync sends requested ones)."""
    task = {
        "resourceType": "Task",
        "status": "draft",
        "intent": "order",
        "owner": {"reference": world.org},
        "for": {"reference": world.patient},
    }
    for start in range(0, count, 100):
        entries = [
            {"resource": task, "request": {"method": "POST", "url": "Task"}}
            for _ in range(min(100, count - start))
        ]
        world.ours.transaction({"resourceType": "Bundle", "type": "transaction", "entry": entries})


def _status(world: World, server: EmbeddedServer) -> tuple[set[str], int]:
    """The Tasks ``exchange status`` lists for the partner, and the requests it cost our server."""
    assert server.counter is not None
    start = server.counter.count
    rows = referrals(world.exchange, world.partner)
    return {r["task"] for r in rows}, server.counter.count - start


def _forget_index(world: World, task_id: str) -> None:
    """What an older version left: the link without the identifier, a state without the marker."""
    task = world.ours.read("Task", task_id)
    task["identifier"] = [i for i in task.get("identifier") or [] if "exchange-sent-to" not in i["system"]]
    world.ours.update(task, if_match=task["meta"]["versionId"])
    cursor = load_cursor(world.exchange, world.partner)
    assert cursor.resource is not None
    for ext in cursor.resource.get("extension") or []:
        if ext["url"].endswith(STATE):
            ext["extension"] = [s for s in ext["extension"] if s["url"] != "links-indexed"]
    cursor.indexed = None
    save_once(world.exchange, cursor)


def test_status_reads_only_the_sent_tasks_of_500_the_partner_owns(
    world: World, our_server: EmbeddedServer
) -> None:
    sent = set()
    for n in range(5):
        task_id, _ = world.refer(note=f"sent {n}")
        send(world.exchange, task_id)
        sent.add(f"Task/{task_id}")
    _unsent(world, 495)
    listed, before = _status(world, our_server)  # no cycle yet: every owned Task paged through
    assert listed == sent
    sync_once(world.exchange, world.partner)
    listed, after = _status(world, our_server)
    assert listed == sent
    assert after == 2  # the partners' states (one search) + one page of the 5 sent Tasks
    assert before > after
    print(f"exchange status, 500 owned / 5 sent: {before} requests before, {after} after")


def test_a_link_written_by_an_older_version_is_listed_and_indexed_by_the_next_cycle(
    world: World, our_server: EmbeddedServer
) -> None:
    task_id, _ = world.refer()
    send(world.exchange, task_id)
    sync_once(world.exchange, world.partner)
    _forget_index(world, task_id)
    listed, _ = _status(world, our_server)  # not indexed: the owner scan still finds it
    assert listed == {f"Task/{task_id}"}
    sync_once(world.exchange, world.partner)  # one pass over the partner's Tasks gives the identifier
    task: dict[str, Any] = world.ours.read("Task", task_id)
    assert any(i["value"] == world.partner for i in task["identifier"] if "exchange-sent-to" in i["system"])
    assert load_cursor(world.exchange, world.partner).indexed
    listed, requests = _status(world, our_server)
    assert (listed, requests) == ({f"Task/{task_id}"}, 2)
    # the pass is made once: the next idle cycle writes nothing on our server
    version = world.ours.read("Task", task_id)["meta"]["versionId"]
    sync_once(world.exchange, world.partner)
    assert world.ours.read("Task", task_id)["meta"]["versionId"] == version


def test_a_session_that_may_not_read_the_states_still_gets_every_row(world: World, monkeypatch: Any) -> None:
    """A patient session's token may be refused the sync states (Basic): status then pages through the
    Tasks the partner owns, as before the identifier, instead of failing."""
    from fhircare.errors import Forbidden
    from fhircare.exchange import status

    task_id, _ = world.refer()
    send(world.exchange, task_id)
    sync_once(world.exchange, world.partner)

    def refused(*_: Any) -> Any:
        raise Forbidden("scope does not cover Basic")

    monkeypatch.setattr(status, "read_cursors", refused)
    assert {r["task"] for r in referrals(world.exchange, world.partner)} == {f"Task/{task_id}"}


def test_both_servers_find_a_linked_task_by_its_sent_to_identifier(world: World) -> None:
    """The search ``exchange status`` makes, on the partner fixture's server (embedded or Medplum's
    router) standing in for ours; the identifier survives a PUT that carries no meta (as the workflows')."""
    from fhircare.exchange.links import Link, sent_to_search, write_link

    namespace = world.exchange.namespace_base
    plain = {"resourceType": "Task", "status": "requested", "intent": "order"}
    other = world.theirs.create(plain)
    linked = world.theirs.create(write_link(plain, Link(world.partner, "http://x/Task/1"), namespace))
    body = {k: v for k, v in linked.items() if k != "meta"}
    world.theirs.update({**body, "status": "accepted"}, if_match=linked["meta"]["versionId"])
    found = [
        t["id"] for t in world.theirs.search("Task", {"identifier": sent_to_search(namespace, world.partner)})
    ]
    assert found == [linked["id"]] and other["id"] not in found
