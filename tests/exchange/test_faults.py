"""Through faults: dropped answers, a worker killed at any point and restarted, two workers at once,
and a partner whose clock runs behind ours. The end state is read from both servers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from fhircare.exchange import Exchange, send, sync_once, work
from fhircare.exchange import apply as apply_module
from fhircare.fhir import FhirClient
from fhircare.server.launcher import free_port
from tests.exchange.conftest import World
from tests.exchange.invariants import check_loop, statuses


class Killed(BaseException):
    """The worker dies here (not an error fhircare could catch)."""


def _work_to_completion(world: World, task_id: str) -> None:
    remote_id = world.remote_of(task_id)["id"]
    work(world.theirs, remote_id, "accepted")
    work(world.theirs, remote_id, "in-progress")
    work(world.theirs, remote_id, "completed", outcome="Attended 3 sessions")


def _end_state(world: World, task_id: str, request_id: str) -> tuple[Any, ...]:
    ours = world.ours.read("Task", task_id)
    return (
        statuses(world.ours, task_id),
        ours["status"],
        len(ours.get("output") or []),
        world.ours.read("ServiceRequest", request_id)["status"],
    )


def test_dropped_answers_from_the_partner_change_nothing(world: World) -> None:
    task_id, request_id = world.refer()
    send(world.exchange, task_id)
    _work_to_completion(world, task_id)
    world.proxy.inject("drop", method="GET", times=1)
    world.proxy.inject("drop", method="POST", times=1)  # the batch of history and outputs
    for _ in range(3):
        sync_once(world.exchange, world.partner)
    assert _end_state(world, task_id, request_id) == (
        ["requested", "accepted", "in-progress", "completed"],
        "completed",
        1,
        "completed",
    )
    check_loop(world, task_id)


@pytest.mark.parametrize("after_commit", [False, True])
@pytest.mark.parametrize("kill_at", [1, 2, 3])
def test_a_worker_killed_at_any_write_and_restarted_converges(
    world: World, monkeypatch: pytest.MonkeyPatch, kill_at: int, after_commit: bool
) -> None:
    task_id, request_id = world.refer()
    send(world.exchange, task_id)
    _work_to_completion(world, task_id)
    real = apply_module.write_version
    calls = {"n": 0}

    def dying(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == kill_at and not after_commit:
            raise Killed
        result = real(*args, **kwargs)
        if calls["n"] == kill_at:
            raise Killed
        return result

    monkeypatch.setattr(apply_module, "write_version", dying)
    with pytest.raises(Killed):
        sync_once(world.exchange, world.partner)
    monkeypatch.setattr(apply_module, "write_version", real)
    sync_once(world.exchange, world.partner)
    sync_once(world.exchange, world.partner)
    assert _end_state(world, task_id, request_id) == (
        ["requested", "accepted", "in-progress", "completed"],
        "completed",
        1,
        "completed",
    )
    check_loop(world, task_id)


def test_two_workers_at_once_apply_each_change_once(world: World) -> None:
    ids = [world.refer(note=f"referral {n}") for n in range(3)]
    for task_id, _ in ids:
        send(world.exchange, task_id)
        _work_to_completion(world, task_id)
    errors: list[BaseException] = []

    def worker() -> None:
        with FhirClient(world.ours.base_url) as local:
            other = Exchange(world.exchange.settings, world.exchange.partners, local)
            try:
                sync_once(other, world.partner)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
            finally:
                other.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    sync_once(world.exchange, world.partner)
    for task_id, request_id in ids:
        assert _end_state(world, task_id, request_id)[1:] == ("completed", 1, "completed")
        check_loop(world, task_id)


@pytest.fixture()
def late_partner() -> Iterator[str]:
    """An embedded server started under faketime, its clock two hours behind ours."""
    port = free_port()
    process = subprocess.Popen(
        [
            "faketime",
            "-f",
            "-2h",
            sys.executable,
            "-m",
            "fhircare.cli.main",
            "server",
            "start",
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # faketime forks the server: the whole group is stopped afterwards
    )
    base = f"http://127.0.0.1:{port}/fhir"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{base}/metadata", timeout=2):  # noqa: S310
                break
        except OSError:
            time.sleep(0.2)
    try:
        yield base
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(10)


def test_a_partner_whose_clock_runs_behind_loses_nothing(world: World, late_partner: str) -> None:
    from dataclasses import replace

    partners = world.exchange.partners
    config = replace(partners.get(world.partner), base=late_partner)
    late = replace(partners, partners={world.partner: config})
    with FhirClient(late_partner) as theirs:
        exchange = Exchange(world.exchange.settings, late, world.ours)
        try:
            task_id, _ = world.refer()
            sync_once(exchange, world.partner)
            remote = next(
                iter(
                    theirs.search("Task", {"identifier": f"urn:ietf:rfc:3986|{partners.base}/Task/{task_id}"})
                )
            )
            assert remote["meta"]["lastUpdated"] < world.ours.read("Task", task_id)["meta"]["lastUpdated"]
            work(theirs, remote["id"], "accepted")
            sync_once(exchange, world.partner)
            work(theirs, remote["id"], "in-progress")
            sync_once(exchange, world.partner)
            work(theirs, remote["id"], "completed", outcome="Done")
            report = sync_once(exchange, world.partner)["partners"][world.partner]
            assert report["applied"] == 1
            assert statuses(world.ours, task_id) == ["requested", "accepted", "in-progress", "completed"]
        finally:
            exchange.close()
