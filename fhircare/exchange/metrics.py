"""Prometheus metrics of the exchange worker (``prometheus-client``): per partner, bounded labels, no PHI.

Labels are the configured partner names, HTTP status classes and fixed outcome words - never ids.
"""

from __future__ import annotations

import time
from typing import Any

from .. import clock
from ..errors import ConfigurationError
from .context import instant


def _prometheus() -> Any:
    try:
        import prometheus_client
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ConfigurationError("metrics need prometheus-client: pip install 'fhircare[web]'") from exc
    return prometheus_client


class ExchangeMetrics:
    """One registry per worker (never the global one: tests and sidecars run several)."""

    def __init__(self) -> None:
        prom = _prometheus()
        self.registry = prom.CollectorRegistry()
        gauge, counter = prom.Gauge, prom.Counter
        self.lag = gauge(
            "fhircare_exchange_lag_seconds",
            "Now minus the newest remote change applied (partner's timestamp).",
            ["partner"],
            registry=self.registry,
        )
        self.cursor_age = gauge(
            "fhircare_exchange_cursor_age_seconds",
            "Seconds since the cursor last moved.",
            ["partner"],
            registry=self.registry,
        )
        self.reachable = gauge(
            "fhircare_exchange_reachable",
            "1 when the partner answered the last cycle.",
            ["partner"],
            registry=self.registry,
        )
        self.conflicts = gauge(
            "fhircare_exchange_conflicts", "Open conflicts.", ["partner"], registry=self.registry
        )
        self.sent = counter(
            "fhircare_exchange_sent", "Remote Tasks created.", ["partner"], registry=self.registry
        )
        self.applied = counter(
            "fhircare_exchange_applied", "Remote versions applied.", ["partner"], registry=self.registry
        )
        self.errors = counter(
            "fhircare_exchange_errors",
            "Cycles that failed or answers not applied.",
            ["partner"],
            registry=self.registry,
        )
        self.cycles = counter(
            "fhircare_exchange_cycles",
            "Sync cycles by trigger.",
            ["partner", "trigger"],
            registry=self.registry,
        )
        self.notifications = counter(
            "fhircare_exchange_notifications",
            "Notifications received by outcome.",
            ["partner", "outcome"],
            registry=self.registry,
        )
        self.requests = counter(
            "fhircare_exchange_requests",
            "FHIR requests by server and status class.",
            ["server", "status"],
            registry=self.registry,
        )
        self._moved: dict[str, tuple[str | None, float]] = {}
        self._newest: dict[str, str] = {}

    def count_requests(self, client: Any, server: str) -> None:
        """Count a client's answers by status class (a response hook on its session)."""

        def hook(response: Any, *args: Any, **kwargs: Any) -> None:
            self.requests.labels(server, f"{response.status_code // 100}xx").inc()

        client.session.hooks["response"].append(hook)

    def cycle(self, partner: str, report: dict[str, Any], trigger: str) -> None:
        """Record one cycle's report (``sync --once`` shape)."""
        self.cycles.labels(partner, trigger).inc()
        self.sent.labels(partner).inc(report.get("sent", 0))
        self.applied.labels(partner).inc(report.get("applied", 0))
        self.conflicts.labels(partner).set(report.get("conflicts", 0))
        self.reachable.labels(partner).set(1 if report.get("reachable") else 0)
        cursor = report.get("cursor")
        before = self._moved.get(partner)
        if before is None or before[0] != cursor:
            self._moved[partner] = (cursor, time.monotonic())
        self.cursor_age.labels(partner).set(time.monotonic() - self._moved[partner][1])
        if report.get("applied") and cursor:
            self._newest[partner] = cursor
        if partner in self._newest:
            self.lag.labels(partner).set(
                max(0.0, (clock.now() - instant(self._newest[partner])).total_seconds())
            )

    def render(self) -> tuple[bytes, str]:
        prom = _prometheus()
        return prom.generate_latest(self.registry), prom.CONTENT_TYPE_LATEST
