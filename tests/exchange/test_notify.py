"""Notifications only wake the sync: the loop closes by polling where a partner has no Subscriptions
(Medplum's router), a wrong secret is refused, a Subscription in error is re-activated; /metrics and
/readyz tell an operator how each partner is doing."""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta

import pytest

from fhircare.exchange import Exchange, work
from fhircare.exchange.listen import Worker, make_server
from fhircare.exchange.notify import subscribe, watch
from fhircare.server.launcher import free_port
from tests.exchange.conftest import World

SECRET = "hook-secret-for-tests"


@pytest.fixture()
def listening(world: World) -> Iterator[tuple[World, Worker, str]]:
    base = world.exchange
    partner = replace(
        base.partners.get(world.partner), notify_secret_env="FB_HOOK_TOKEN", poll=timedelta(hours=1)
    )
    partners = replace(base.partners, partners={world.partner: partner})
    settings = replace(base.settings, partner_tokens=(("FB_HOOK_TOKEN", SECRET),))
    exchange = Exchange(settings, partners, world.ours)
    worker = Worker(exchange, [world.partner], unready_after=timedelta(seconds=0))
    port = free_port()
    server = make_server(worker, "127.0.0.1", port)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    loop = threading.Thread(target=worker.run, daemon=True)
    loop.start()
    try:
        yield world, worker, f"http://127.0.0.1:{port}"
    finally:
        worker.stop.set()
        worker.wake.set()
        loop.join(10)
        server.shutdown()
        server.server_close()
        exchange.close()


def _wait(predicate: object, seconds: float = 30.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.1)
    return False


def _post(url: str, token: str) -> int:
    request = urllib.request.Request(
        url, data=b"{}", method="POST", headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:  # noqa: S310
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_a_notification_wakes_the_sync_and_a_partner_without_subscriptions_is_polled(
    listening: tuple[World, Worker, str], partner_server: object
) -> None:
    world, worker, hook = listening
    task_id, _ = world.refer()
    exchange = worker.exchange
    worker.notify(world.partner)  # the first cycle sends it
    assert _wait(lambda: len(world.remote_tasks(task_id)) == 1)
    made = subscribe(exchange, world.partner, hook)
    remote_id = world.remote_of(task_id)["id"]
    if getattr(partner_server, "kind", "") == "medplum":
        assert made["status"] == "requested"  # the router never activates one
        assert watch(exchange, exchange.partners.get(world.partner), made["subscription"]) == "polling"
        return
    assert _wait(
        lambda: world.theirs.read_reference(made["subscription"].split("/fhir/")[-1])["status"] == "active"
    )
    started = time.monotonic()
    work(world.theirs, remote_id, "accepted")
    assert _wait(lambda: world.ours.read("Task", task_id)["status"] == "accepted")
    assert time.monotonic() - started < 60  # woken, not the hourly poll
    assert subscribe(exchange, world.partner, hook)["created"] is False


def test_a_notification_with_a_wrong_secret_is_refused_and_runs_nothing(
    listening: tuple[World, Worker, str],
) -> None:
    world, worker, hook = listening
    assert _wait(lambda: worker.metrics.cycles.labels(world.partner, "schedule")._value.get() == 1)
    assert _post(f"{hook}/hook/{world.partner}", "wrong") == 401
    assert _post(f"{hook}/hook/{world.partner}", "") == 401
    assert _post(f"{hook}/hook/nobody", SECRET) == 404
    time.sleep(0.5)
    assert worker.metrics.cycles.labels(world.partner, "notification")._value.get() == 0
    assert _post(f"{hook}/hook/{world.partner}", SECRET) == 200
    assert _wait(lambda: worker.metrics.cycles.labels(world.partner, "notification")._value.get() == 1)


def test_metrics_and_readiness_follow_the_partner(listening: tuple[World, Worker, str]) -> None:
    world, worker, hook = listening
    assert _wait(lambda: worker.metrics.cycles.labels(world.partner, "schedule")._value.get() == 1)
    with urllib.request.urlopen(f"{hook}/metrics", timeout=5) as answer:  # noqa: S310
        text = answer.read().decode()
    assert f'fhircare_exchange_reachable{{partner="{world.partner}"}} 1.0' in text
    assert 'fhircare_exchange_requests_total{server="ours",status="2xx"}' in text
    assert "Patient" not in text and world.patient not in text
    with urllib.request.urlopen(f"{hook}/readyz", timeout=5) as answer:  # noqa: S310
        assert answer.status == 200
    world.proxy.inject("503", times=1000)
    worker.notify(world.partner)
    assert _wait(lambda: worker.metrics.reachable.labels(world.partner)._value.get() == 0)
    with pytest.raises(urllib.error.HTTPError) as down:
        urllib.request.urlopen(f"{hook}/readyz", timeout=5)  # noqa: S310
    assert down.value.code == 503


@pytest.mark.embedded_only("only the embedded server turns Subscriptions on and off")
def test_a_subscription_in_error_is_reactivated(
    listening: tuple[World, Worker, str], partner_server: object
) -> None:
    world, worker, hook = listening
    if getattr(partner_server, "kind", "") == "medplum":
        pytest.skip("Medplum's router has no subscription engine")
    made = subscribe(worker.exchange, world.partner, hook)
    sid = made["subscription"].rsplit("/", 1)[1]
    assert _wait(lambda: world.theirs.read("Subscription", sid)["status"] == "active")
    current = world.theirs.read("Subscription", sid)
    world.theirs.update({**current, "status": "error"})
    assert (
        watch(worker.exchange, worker.exchange.partners.get(world.partner), made["subscription"])
        == "reactivated"
    )
    assert _wait(lambda: world.theirs.read("Subscription", sid)["status"] in ("requested", "active"))


TASK_TOPIC = "http://hl7.org/fhir/us/sdoh-clinicalcare/SubscriptionTopic/Task"
ST = "http://hl7.org/fhir/5.0/StructureDefinition/extension-SubscriptionTopic"


def _install_task_topic(world: World) -> None:
    """The partner publishes the Gravity Task topic (the embedded server keeps topics as Basic)."""
    task = "http://hl7.org/fhir/StructureDefinition/Task"
    if list(world.theirs.search("Basic", {"code": "SubscriptionTopic"})) and any(
        any(e.get("valueUri") == TASK_TOPIC for e in b.get("extension") or [])
        for b in world.theirs.search("Basic", {"code": "SubscriptionTopic"})
    ):
        return
    world.theirs.create(
        {
            "resourceType": "Basic",
            "code": {"coding": [{"system": "http://hl7.org/fhir/fhir-types", "code": "SubscriptionTopic"}]},
            "extension": [
                {"url": f"{ST}.url", "valueUri": TASK_TOPIC},
                {"url": f"{ST}.title", "valueString": "SDOHCC Task"},
                {
                    "url": f"{ST}.resourceTrigger",
                    "extension": [
                        {"url": "resource", "valueUri": task},
                        {"url": "supportedInteraction", "valueCode": "create"},
                        {"url": "supportedInteraction", "valueCode": "update"},
                    ],
                },
                {
                    "url": f"{ST}.canFilterBy",
                    "extension": [
                        {"url": "filterParameter", "valueString": "_tag"},
                        {"url": "resource", "valueUri": task},
                    ],
                },
            ],
        }
    )


@pytest.mark.embedded_only("only the embedded server has topic-based Subscriptions")
def test_a_backport_topic_subscription_wakes_the_sync_and_silent_heartbeats_reactivate_it(
    listening: tuple[World, Worker, str], partner_server: object
) -> None:
    world, worker, hook = listening
    if getattr(partner_server, "kind", "") == "medplum":
        pytest.skip("Medplum's router has no subscription engine")
    _install_task_topic(world)
    task_id, _ = world.refer()
    worker.notify(world.partner)
    assert _wait(lambda: len(world.remote_tasks(task_id)) == 1)
    made = subscribe(worker.exchange, world.partner, hook, topic=TASK_TOPIC, heartbeat=60)
    sid = made["subscription"].rsplit("/", 1)[1]
    assert _wait(lambda: world.theirs.read("Subscription", sid)["status"] == "active")
    work(world.theirs, world.remote_of(task_id)["id"], "accepted")
    assert _wait(lambda: world.ours.read("Task", task_id)["status"] == "accepted")
    partner = worker.exchange.partners.get(world.partner)
    assert watch(worker.exchange, partner, made["subscription"], silent_for=30) == "active"
    assert watch(worker.exchange, partner, made["subscription"], silent_for=121) == "reactivated"
    assert _wait(lambda: world.theirs.read("Subscription", sid)["status"] == "active")
