"""Demo seeding by worker processes: the same caseload as seeding patient after patient, in order."""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

import pytest

from fhircare.demo import Seeder
from fhircare.demo.world import DEMO_MRN_SYSTEM
from fhircare.fhir import FhirClient
from fhircare.server import EmbeddedServer
from fhircare.workflows.repeats import FINGERPRINT
from tests.support.clock import today

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
TODAY = today()


def test_a_patients_draws_do_not_depend_on_who_drew_the_earlier_ones() -> None:
    one_by_one = Seeder(None, 11, TODAY)  # type: ignore[arg-type]  # drawing needs no client
    drawn = [one_by_one.draw(i) for i in range(7)]
    skipping = Seeder(None, 11, TODAY)  # type: ignore[arg-type]
    assert skipping.draw(4) == drawn[4]
    assert skipping.draw(6) == drawn[6]
    with pytest.raises(ValueError):
        skipping.draw(5)


def _content(server: EmbeddedServer) -> Counter[str]:
    """Every stored resource without its server-given id, time stamps or references' ids."""
    out: Counter[str] = Counter()
    for row in server.app.state.ctx.store.query("SELECT json FROM resources WHERE deleted = 0"):
        resource: dict[str, Any] = json.loads(row[0])
        resource.pop("id", None)
        meta = resource.get("meta", {})
        meta.pop("lastUpdated", None)
        # a run's payload fingerprint hashes the payload, server-given ids included: as different as they
        meta["tag"] = [t for t in meta.get("tag", []) if not t["system"].endswith("/" + FINGERPRINT)]
        out[UUID.sub("X", json.dumps(resource, sort_keys=True))] += 1
    return out


def test_workers_seed_the_same_caseload_as_one_process() -> None:
    seen = []
    for workers in (1, 2):
        with EmbeddedServer() as server, FhirClient(server.base_url) as client:
            world = Seeder(client, 11, TODAY).seed_all(45, lambda _: None, workers=workers)
            seen.append((_content(server), world.runs, len(world.patients), len(world.referrals)))
    assert seen[0] == seen[1]
    assert seen[0][2] == 45


def test_workers_keep_patients_in_order_and_write_no_duplicates(fhir_server: Any, uid: str) -> None:
    seed = int(uid[:6], 16)
    done: list[int] = []
    with FhirClient(fhir_server.base_url) as client:
        world = Seeder(client, seed, TODAY).seed_all(25, done.append, workers=2)
        assert sum(done) == 25 and len(world.patients) == 25
        for i in (0, 19, 20, 24):  # either side of a chunk's end
            found = client.search("Patient", {"identifier": f"{DEMO_MRN_SYSTEM}|MRN-{seed}-{i:04d}"})
            assert [f"Patient/{p['id']}" for p in found] == [world.patients[i]]
        # seeding again replays every run by its request id: nothing new is written
        again = Seeder(client, seed, TODAY).seed_all(25, lambda _: None, workers=2)
        assert again.patients == world.patients
        assert again.referrals == world.referrals
