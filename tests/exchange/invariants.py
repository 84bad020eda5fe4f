"""Invariants read from both servers after a run."""

from __future__ import annotations

from typing import Any

from fhircare.exchange.context import instant
from tests.exchange.conftest import World


def _history(client: Any, task_id: str) -> list[dict[str, Any]]:
    bundle = client.request("GET", f"Task/{task_id}/_history", params={"_count": "1000"}).json()
    versions = [e["resource"] for e in bundle.get("entry") or [] if (e.get("resource") or {}).get("id")]
    return sorted(versions, key=lambda v: instant(v["meta"]["lastUpdated"]))


def statuses(client: Any, task_id: str) -> list[str]:
    """The Task's statuses over its history, oldest first, repeats collapsed."""
    out: list[str] = []
    for version in _history(client, task_id):
        if not out or out[-1] != version["status"]:
            out.append(version["status"])
    return out


def check_loop(world: World, task_id: str) -> None:
    """Every performer status of the remote history appears in ours, in order; one remote Task;
    one copy per remote output; one Provenance per applied remote version."""
    remote = world.remote_of(task_id)
    theirs = statuses(world.theirs, remote["id"])
    ours = statuses(world.ours, task_id)
    position = 0
    for status in theirs:
        assert status in ours[position:], f"remote {theirs} not in ours {ours} in order"
        position = ours.index(status, position)
    for output in remote.get("output") or []:
        ref = output["valueReference"]["reference"]
        url = ref if ref.startswith("http") else f"{world.proxy.base_url}/{ref}"
        copies = list(world.ours.search(ref.split("/")[-2], {"identifier": f"urn:ietf:rfc:3986|{url}"}))
        assert len(copies) == 1, f"{len(copies)} copies of {url}"
    provenances = list(world.ours.search("Provenance", {"target": f"Task/{task_id}"}))
    whats = [p["entity"][0]["what"]["reference"] for p in provenances if p.get("entity")]
    assert len(whats) == len(set(whats)), "a remote version applied twice"
