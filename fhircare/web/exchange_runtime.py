"""The exchange inside the sidecar process: the partners (loaded once), one sync Worker (its metrics,
and, with ``FHIRCARE_SYNC_IN_SIDECAR=1``, its loop in a background thread), and the sidecar's own
Prometheus counters (answers by status, workflow runs by outcome).

``/metrics`` is off unless ``FHIRCARE_METRICS=1`` (a 404 then, as for any unknown path): it needs no
session, so it is switched on only where the operator has put the scrape port out of the public's
reach. Labels are bounded: configured partner names, Flask endpoint names, HTTP status codes, workflow
names the sidecar knows, fixed outcome words. Never an id, a reference or a name.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, current_app, g, request

from ..errors import ConfigurationError, FhircareError, NotFound
from ..settings import Settings

if TYPE_CHECKING:
    from ..exchange import Partners
    from ..exchange.listen import Worker

log = logging.getLogger("fhircare.web")

#: the outcomes a workflow run is counted under (a fixed set: bounded labels)
RUN_OUTCOMES = ("written", "repeated", "dry_run", "refused", "conflict", "failed")
#: /readyz fails once a partner the in-sidecar worker syncs has been unreachable this long
UNREADY_AFTER = timedelta(hours=1)


class SidecarMetrics:
    """The sidecar's own counters, in a registry of their own (never the global one)."""

    def __init__(self) -> None:
        from ..exchange.metrics import _prometheus

        prom = _prometheus()
        self.registry = prom.CollectorRegistry()
        self.answers = prom.Counter(
            "fhircare_sidecar_requests",
            "Sidecar answers by endpoint and HTTP status.",
            ["endpoint", "status"],
            registry=self.registry,
        )
        self.runs = prom.Counter(
            "fhircare_workflow_runs",
            "Workflow runs through the sidecar by workflow and outcome.",
            ["workflow", "outcome"],
            registry=self.registry,
        )
        self.partner_answers = prom.Counter(
            "fhircare_partner_caller_requests",
            "Answers to callers who are a partner's staff (the light pattern) by partner, endpoint, status.",
            ["partner", "endpoint", "status"],
            registry=self.registry,
        )

    def render(self) -> bytes:
        from ..exchange.metrics import _prometheus

        return bytes(_prometheus().generate_latest(self.registry))


class SidecarExchange:
    """What the sidecar keeps of the exchange: partners, a worker (whose Exchange has its own client
    of our server: a ``requests.Session`` is not shared across threads) and the loop's thread."""

    def __init__(self, settings: Settings, partners: Partners | None) -> None:
        self.settings = settings
        self.partners = partners
        self.metrics = SidecarMetrics() if settings.metrics else None
        self.worker: Worker | None = None
        self.thread: threading.Thread | None = None
        self.cycle_lock = threading.Lock()  # one cycle at a time on the worker's clients
        self.checked = False
        self._made = threading.Lock()
        #: (issuer, user) -> (expiry, partner name or ""): callers_by_role answers (web/callers.py)
        self.role_cache: dict[tuple[str, str], tuple[float, str]] = {}

    def require(self) -> Partners:
        """The partners; a sidecar without them has no exchange routes (404, saying why)."""
        if self.partners is None:
            raise NotFound(
                "no partners configured on this sidecar (FHIRCARE_PARTNERS or FHIRCARE_ORGANIZATION)"
            )
        return self.partners

    def partner_organizations(self) -> set[str]:
        """Our Organizations standing for partners (a Task they own is a referral to them)."""
        if self.partners is None:
            return set()
        return {p.organization for p in self.partners.partners.values()}

    def get_worker(self) -> Worker:
        with self._made:  # request threads may ask at once: one worker, one client of our server
            return self._get_worker()

    def _get_worker(self) -> Worker:
        if self.worker is None:
            from ..exchange import Exchange
            from ..exchange.listen import Worker
            from .fhir_access import FhirAccess

            local = FhirAccess(self.settings).shared_client()  # the sidecar's own identity
            exchange = Exchange(self.settings, self.require(), local)
            self.worker = Worker(exchange, sorted(exchange.partners.partners), unready_after())
        return self.worker

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def start(self) -> None:
        worker = self.get_worker()
        self.thread = threading.Thread(target=self._loop, name="fhircare-sync", daemon=True)
        self.thread.start()
        atexit.register(self.stop)
        log.info("sync worker started in the sidecar", extra={"partners": len(worker.names)})

    def _loop(self) -> None:
        worker = self.get_worker()
        original: Callable[[str, str], dict[str, Any]] = worker.cycle

        def locked(name: str, trigger: str) -> dict[str, Any]:
            with self.cycle_lock:
                return original(name, trigger)

        worker.cycle = locked  # type: ignore[method-assign]
        worker.run()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the loop after its current cycle and close the worker's clients."""
        if self.worker is not None:
            self.worker.stop.set()
            self.worker.wake.set()
        if self.thread is not None:
            self.thread.join(timeout)
            self.thread = None
        if self.worker is not None:
            self.worker.exchange.close()
            self.worker.exchange.local.close()
            self.worker = None

    def wake(self, name: str) -> None:
        """A partner's notification: wake the loop, or (no loop here) run that partner's cycle once in
        the background unless one is already running (a notification is a hint: one cycle is enough)."""
        worker = self.get_worker()
        if self.running:
            worker.notify(name)
            return
        worker.heard[name] = time.monotonic()  # the hint is heard; nothing of its content is used

        def once() -> None:
            if not self.cycle_lock.acquire(blocking=False):
                return
            try:
                worker.cycle(name, "notification")
            finally:
                self.cycle_lock.release()

        threading.Thread(target=once, name="fhircare-sync-once", daemon=True).start()

    def count_run(self, workflow: str, outcome: str) -> None:
        if self.metrics is not None and outcome in RUN_OUTCOMES:
            self.metrics.runs.labels(workflow, outcome).inc()

    def count_notification(self, partner: str, outcome: str) -> None:
        if self.metrics is not None:
            self.get_worker().metrics.notifications.labels(partner, outcome).inc()

    def count_sent(self, partner: str, created: bool) -> None:
        if self.metrics is not None and created and self.partners and partner in self.partners.partners:
            self.get_worker().metrics.sent.labels(partner).inc()

    def render_metrics(self) -> bytes:
        assert self.metrics is not None
        body = self.metrics.render()
        if self.partners is not None and self.partners.partners:
            worker = self.get_worker()
            if not self.running:  # no loop here: reachability and conflicts from the shared state
                self._refresh(worker)
            body += bytes(worker.metrics.render()[0])
        return body

    def _refresh(self, worker: Worker) -> None:
        from ..exchange import partner_states

        with self.cycle_lock:
            try:
                states = partner_states(worker.exchange)
            except FhircareError as exc:
                log.warning("metrics: partner states unreadable", extra={"error": type(exc).__name__})
                return
        for name, state in states.items():
            worker.metrics.reachable.labels(name).set(1 if state["reachable"] else 0)
            worker.metrics.conflicts.labels(name).set(state["conflicts"])

    def ready(self) -> tuple[bool, dict[str, Any]]:
        """With the loop here: unready once a partner has been down past UNREADY_AFTER."""
        if not self.running or self.worker is None:
            return True, {}
        return self.worker.ready()


def sidecar_exchange() -> SidecarExchange:
    found: SidecarExchange = current_app.extensions["fhircare.exchange"]
    return found


def unready_after() -> timedelta:
    return UNREADY_AFTER


def init_exchange(app: Flask, settings: Settings) -> SidecarExchange:
    """Partners loaded once (none configured: the exchange routes say so), /metrics when enabled,
    answers counted, and the worker's loop started when ``FHIRCARE_SYNC_IN_SIDECAR=1``."""
    partners = None
    if settings.partners_file is not None or settings.organization:
        from ..exchange import load_partners

        partners = load_partners(settings)
    holder = SidecarExchange(settings, partners)
    app.extensions["fhircare.exchange"] = holder
    if holder.metrics is not None:
        metrics = holder.metrics

        @app.after_request
        def count_answer(response: Response) -> Response:
            endpoint, status = request.endpoint or "none", str(response.status_code)
            metrics.answers.labels(endpoint, status).inc()
            acting = g.get("partner_caller")
            if acting is not None:  # a configured partner's name: a bounded label, no person in it
                metrics.partner_answers.labels(acting.partner.name, endpoint, status).inc()
            return response

        from ..exchange.metrics import _prometheus

        kind = _prometheus().CONTENT_TYPE_LATEST

        def serve_metrics() -> Response:
            return Response(holder.render_metrics(), content_type=kind)

        app.add_url_rule("/metrics", "metrics", serve_metrics, methods=["GET"])
    if settings.sync_in_sidecar:
        if partners is None or not partners.partners:
            raise ConfigurationError("FHIRCARE_SYNC_IN_SIDECAR needs partners (FHIRCARE_PARTNERS)")
        holder.start()
    return holder
