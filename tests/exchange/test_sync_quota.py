"""Sync against a partner that throttles: a points quota on the partner's server (Medplum's router with
its own, the embedded server behind the quota proxy) answers whole requests and batch entries ``429``.
The closed loop still sends each referral once, applies every remote status in order, copies each output
once, never calls the partner unreachable nor anything missing, and moves the cursor only past what is
committed here. Windows are short (1 s) so the waits stay short."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from click.testing import CliRunner

from fhircare.cli.main import cli
from fhircare.exchange import referrals, work
from fhircare.exchange.context import instant
from fhircare.server import EmbeddedServer
from tests.exchange.conftest import World
from tests.exchange.invariants import check_loop, statuses
from tests.faults import quota_proxy
from tests.faults.quota_proxy import QuotaProxy
from tests.support.servers import wanted_servers

REFERRALS = 3


@pytest.fixture(scope="module", params=wanted_servers())
def partner_server(request: pytest.FixtureRequest) -> Iterator[Any]:
    """The partner's server, with a quota: Medplum's router its own (off until a test sets it), the
    embedded one none (the quota proxy in front of it brings one)."""
    if request.param == "embedded":
        server: Any = EmbeddedServer()
    else:
        from tests.servers.medplum import MedplumServer

        server = MedplumServer(quota_points_per_minute=1_000_000, quota_window_s=1.0)
    with server:
        server.kind = request.param
        if request.param == "medplum":
            server.set_quota(None)
        yield server


@dataclass
class Throttled:
    """The partner's 429s as the client met them: whole answers and batch entries."""

    whole: int = 0
    entries: int = 0


@pytest.fixture()
def throttled(monkeypatch: pytest.MonkeyPatch) -> Throttled:
    """Counts every 429 the quota proxy answers (its own, or Medplum's passed through)."""
    seen = Throttled()
    reply = quota_proxy._reply

    def counting(request: Any, status: int, headers: list[tuple[str, str]], answer: bytes) -> None:
        if status == 429:
            seen.whole += 1
        elif answer.startswith(b"{") and b'"429' in answer:
            entries = json.loads(answer).get("entry") or []
            seen.entries += sum(str(e["response"]["status"]).startswith("429") for e in entries)
        reply(request, status, headers, answer)

    monkeypatch.setattr(quota_proxy, "_reply", counting)
    return seen


@pytest.fixture()
def proxy(partner_server: Any, throttled: Throttled) -> Iterator[QuotaProxy]:
    """In front of either partner: the embedded one's quota, Medplum's only watched (its own quota)."""
    with QuotaProxy(partner_server.base_url) as running:
        yield running


@pytest.fixture()
def quota(partner_server: Any, proxy: QuotaProxy) -> Iterator[tuple[Callable[..., Any], Callable[[], int]]]:
    """(set the partner's quota: points per 1 s window or None, interactions refused so far)."""
    if partner_server.kind == "medplum":
        setter: Callable[..., Any] = lambda points, window_s=1.0: partner_server.set_quota(points, window_s)  # noqa: E731
        refused: Callable[[], int] = lambda: int(partner_server.quota().get("refused", 0))  # noqa: E731
    else:
        setter = lambda points, window_s=1.0: proxy.set_quota(points, window_s)  # noqa: E731
        refused = lambda: proxy.refused  # noqa: E731
    yield setter, refused
    setter(None)


def _cycle(world: World, budget_s: int = 30) -> dict[str, Any]:
    out = CliRunner().invoke(
        cli,
        ["--base", world.ours.base_url, "sync", "--once", "--partner", world.partner],
        env={"FHIRCARE_PARTNERS": str(world.partners_file), "FHIRCARE_THROTTLE_BUDGET": str(budget_s)},
    )
    assert out.exit_code == 0, out.output
    text = out.stdout + (out.stderr if out.stderr_bytes is not None else "")
    assert "name nothing" not in text and "missing" not in text.lower(), text[-2000:]
    report: dict[str, Any] = json.loads(out.stdout)["partners"][world.partner]
    assert report["reachable"] is True, report  # a partner that answers 429 is throttling, not down
    return report


def _cursor_behind_our_commits(world: World, tasks: list[str], cursor: str | None) -> None:
    """Every remote Task at or before the cursor has its status committed on ours."""
    if cursor is None:
        return
    for task_id in tasks:
        remote = world.remote_of(task_id)
        if instant(remote["meta"]["lastUpdated"]) <= instant(cursor):
            assert world.ours.read("Task", task_id)["status"] == remote["status"], (task_id, cursor)


def test_referrals_sent_and_worked_there_sync_through_a_partner_that_throttles(
    world: World, quota: tuple[Callable[..., Any], Callable[[], int]], throttled: Throttled
) -> None:
    set_quota, refused = quota
    tasks = [world.refer(note=f"referral {n}")[0] for n in range(REFERRALS)]
    set_quota(250)  # two writes a window: the third referral's create waits for the next one
    sent = 0
    for _ in range(3):
        sent += _cycle(world)["sent"]
    assert sent == REFERRALS
    assert refused() > 0, "the partner never throttled the sends"
    set_quota(None)  # the partner's own staff work unthrottled (their client is not under test)
    remotes = [world.remote_of(t)["id"] for t in tasks]
    for n, remote in enumerate(remotes):
        work(world.theirs, remote, "accepted")
        if n != 1:
            work(world.theirs, remote, "in-progress")
            work(world.theirs, remote, "completed", outcome=f"Enrolled {n}")
    set_quota(25)  # a search (20) fits, the history + output batch after it does not: entries answered 429
    before = refused()
    reports = []
    for _ in range(3):
        reports.append(_cycle(world))
        _cursor_behind_our_commits(world, tasks, reports[-1]["cursor"])
    assert refused() > before, "the partner never throttled the polls"
    assert throttled.whole > 0 and throttled.entries > 0, throttled
    assert sum(r["applied"] for r in reports) == 3 + 1 + 3  # two worked to the end, one only accepted
    assert reports[-1]["applied"] == 0 and all(r["conflicts"] == 0 for r in reports)
    set_quota(None)
    latest = max((world.remote_of(t) for t in tasks), key=lambda r: instant(r["meta"]["lastUpdated"]))
    assert instant(str(reports[-1]["cursor"])) >= instant(latest["meta"]["lastUpdated"])
    for n, task_id in enumerate(tasks):
        assert len(world.remote_tasks(task_id)) == 1
        expected = ["requested", "accepted"] + ([] if n == 1 else ["in-progress", "completed"])
        assert statuses(world.ours, task_id) == expected
        check_loop(world, task_id)
        ours = world.ours.read("Task", task_id)
        if n != 1:
            assert ours["output"][0]["valueReference"]["reference"].startswith("Procedure/")
    rows = [r for r in referrals(world.exchange) if r["task"] in {f"Task/{t}" for t in tasks}]
    assert len(rows) == REFERRALS
    assert all(not r.get("not_applied") for r in rows), rows


@pytest.mark.parametrize(
    "points",
    [
        pytest.param(10, id="the search answered 429 whole"),
        pytest.param(25, id="the history batch answered 429 per entry"),
    ],
)
def test_a_partner_throttling_past_the_budget_is_reachable_and_the_cursor_stays_before_the_change(
    world: World, quota: tuple[Callable[..., Any], Callable[[], int]], points: int
) -> None:
    set_quota, refused = quota
    task_id, _ = world.refer()
    _cycle(world)  # sent, unthrottled
    remote = world.remote_of(task_id)["id"]
    work(world.theirs, remote, "accepted")
    before = _cycle(world)  # accepted here too: the cursor past it
    work(world.theirs, remote, "in-progress")
    work(world.theirs, remote, "completed", outcome="Enrolled")  # two versions: history + output read
    set_quota(points, 3.0)  # a window longer than the budget: the wait cannot be waited out
    report = _cycle(world, budget_s=1)
    assert refused() > 0
    assert report["applied"] == 0 and report["cursor"] == before["cursor"]
    assert world.ours.read("Task", task_id)["status"] == "accepted"
    set_quota(None)
    after = _cycle(world)
    assert after["applied"] == 2
    assert statuses(world.ours, task_id) == ["requested", "accepted", "in-progress", "completed"]
    check_loop(world, task_id)
