"""What fhircare does on one server for one identity: decided from what was learned, and learned
through the client (probes, or what answers showed) when it is not known yet.

The arrows point one way: :class:`~fhircare.fhir.client.FhirClient` asks its policy
(``client.policy``); the policy reads and writes the :class:`~fhircare.fhir.behaviour.BehaviourStore`
and probes through the client, which it knows only as a :class:`~fhircare.fhir.probes.Prober`. The
transport below knows neither.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from ..errors import FhirServerError, TransientError
from .behaviour import BehaviourStore, ServerBehaviour
from .cleanup import ProbeLeftBehind
from .probes import (
    Prober,
    probe_atomicity,
    probe_conditional_references,
    probe_include,
    probe_legacy_stamps,
    probe_transaction_limit,
)

log = logging.getLogger("fhircare.fhir")


class ServerPolicy:
    """One client's view of what its server does for the identity it acts as (``key``)."""

    def __init__(self, client: Prober, store: BehaviourStore, key: str, scoped: bool = False) -> None:
        """``scoped``: the client's credentials may see only part of the server, so what it cannot
        see is never learned as what the server holds (see :meth:`holds_legacy_stamps`)."""
        self.client = client
        self.store = store
        self.key = key
        self.scoped = scoped
        self._behaviour: ServerBehaviour | None = None
        #: `_include` support taken from the declaration while no search could show it (this client only)
        self._declared_includes: dict[str, bool] = {}

    @property
    def behaviour(self) -> ServerBehaviour:
        """What was learned (loaded from the store on first use)."""
        if self._behaviour is None:
            self._behaviour = self.store.load(self.key)
        return self._behaviour

    def learn(self, **changes: Any) -> None:
        """Record what the server was seen to do (``atomic_transactions=False``, ...) and keep it."""
        behaviour = self.behaviour
        if all(getattr(behaviour, k) == v for k, v in changes.items()):
            return
        for name, value in changes.items():
            setattr(behaviour, name, value)
        log.info("learned server behaviour", extra={"learned": sorted(changes)})
        self.store.save(self.key, behaviour)

    # ---- decisions ----------------------------------------------------------------------------

    def resolves_conditional_references(self) -> bool:
        """Whether the server resolves ``Type?query`` references inside a transaction (probed once)."""
        known = self.behaviour.conditional_references
        if known is None:
            known = probe_conditional_references(self.client)
            self.learn(conditional_references=known)
            self.holds_legacy_stamps()  # learned with it: the write path needs both
        return known

    def holds_legacy_stamps(self) -> bool:
        """Whether the server holds runs an earlier release stamped ``urn:fhircare:request-id``
        (probed once, remembered): where it holds none, request-id searches name one system."""
        known = self.behaviour.legacy_stamps
        if known is None:
            if self.scoped:  # its token may not see them: assume some, learn nothing (the OR is correct)
                return True
            known = probe_legacy_stamps(self.client)
            self.learn(legacy_stamps=known)
        return known

    def include_works(self, resource_type: str, spec: str, declared: Callable[[], bool]) -> bool:
        """Whether ``_include=<spec>`` on ``resource_type`` brings included resources back: one
        search shows it, remembered once it could tell; until then ``declared()`` (this client only)."""
        key = f"{resource_type}:{spec}"
        known = self.behaviour.include.get(key, self._declared_includes.get(key))
        if known is not None:
            return known
        try:
            seen = probe_include(self.client, resource_type, spec)
        except FhirServerError as exc:
            if not refuses_the_search(exc):  # throttled, failed, unreachable: it showed nothing
                log.info("the _include probe could not tell", extra={"http_status": exc.http_status})
                return False  # this time only: the views' batch reads work on any server
            seen = False
        if seen is None:  # nothing on the server can tell yet: trust the declaration for this client
            self._declared_includes[key] = declared()  # never kept: a later client probes again
            return self._declared_includes[key]
        self.learn(include={**self.behaviour.include, key: seen})
        return seen

    def applies_transactions_atomically(self) -> bool | None:
        """Whether a transaction is all or nothing here, as learned (None: nothing showed it yet;
        fhircare then assumes it is, and learns otherwise from the first partial answer)."""
        return self.behaviour.atomic_transactions

    def probe_atomicity(self) -> bool | None:
        """Send a transaction built to fail on its last entry and see whether anything of it stayed
        (see :func:`~fhircare.fhir.probes.probe_atomicity`; what it wrote is deleted); the answer is
        kept for this identity. None when the server's answer cannot tell;
        :class:`~fhircare.fhir.cleanup.ProbeLeftBehind` when what it wrote could not all be deleted."""
        try:
            seen = probe_atomicity(self.client)
        except ProbeLeftBehind as left:  # what it saw holds, though it could not delete all it wrote
            if left.verdict is not None:
                self.learn(atomic_transactions=left.verdict)
            raise
        if seen is not None:
            self.learn(atomic_transactions=seen)
        return seen

    def transaction_limit_seen(self) -> bool | None:
        """Whether a transaction of nine conditional entries is taken (learning the limit if not)."""
        return probe_transaction_limit(self.client)

    def saw_partial_write(self) -> None:
        """A transaction came back 200 with failed entries: not atomic for this identity, whatever
        was assumed or learned before (re-learned: the server contradicted it)."""
        if self.behaviour.atomic_transactions is not False:
            log.warning("the server applied a transaction entry by entry; remembered as not atomic")
        self.learn(atomic_transactions=False)

    def saw_size_refusal(self, entries: int) -> None:
        """A transaction of ``entries`` conditional entries was refused for its size."""
        known = self.behaviour.strict_refused_at
        self.learn(strict_refused_at=entries if known is None else min(known, entries))

    def __repr__(self) -> str:
        return f"ServerPolicy({self.key!r})"


def refuses_the_search(exc: FhirServerError) -> bool:
    """Whether an error answer is the server refusing the request itself (a 4xx such as 400 for an
    unknown ``_include``), not throttling (429), a failure (5xx, no answer) or a credential's limit
    (401/403): only a refusal says something about the server that is worth keeping."""
    status = exc.http_status
    if isinstance(exc, TransientError) or status is None:
        return False
    return 400 <= status < 500 and status not in (401, 403, 408, 429)
