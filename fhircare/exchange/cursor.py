"""Per-partner sync state on our FHIR server: one ``Basic`` resource per partner, written with If-Match.

It holds the cursor (the partner's own ``meta.lastUpdated``, as the partner wrote it - never our clock),
the remote versions seen inside the overlap window (so re-reading the overlap applies nothing twice and
costs no local read), our Tasks whose cancel waits for the partner, and reachability. Every worker and
sidecar replica reads it from the server; If-Match makes concurrent savers merge instead of overwrite.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from ..errors import PreconditionFailed
from .context import Exchange, instant
from .links import version_of

STATE = "StructureDefinition/exchange-state"
STATE_ID = "sid/exchange-state"
#: how stale ``polled-at`` may get before a complete poll writes it again: a fraction of the
#: ``exchange-not-synced`` gap rule's window (6 h), so that an idle cycle writes nothing three times out
#: of four at a 15-minute poll, and the rule is off by at most this much (see ``Cursor.polled``)
POLLED_AT_EVERY = timedelta(hours=1)


@dataclass
class Cursor:
    """One partner's sync state."""

    partner: str
    value: str | None = None  # the newest remote meta.lastUpdated applied, as the partner wrote it
    seen: dict[str, tuple[str, str]] = field(default_factory=dict)  # remote Task id -> (version, updated)
    pending: set[str] = field(default_factory=set)  # our Task ids with a cancel waiting
    conflicts: set[str] = field(default_factory=set)  # our Task ids with an open conflict
    forwarded: set[str] = field(default_factory=set)  # "<our Task id>|<incoming Task id>", still open
    added: set[str] = field(default_factory=set)  # conflicts found by this worker, not yet saved
    local: str | None = None  # our server's meta.lastUpdated of the newest Task sent (unsent search)
    subscription: str | None = None  # the partner's Subscription waking us (absolute URL), if any
    # the partner's time at the last complete poll minus the overlap: everything stamped before it was
    # committed and seen then, so the next poll starts at the later of this and cursor - overlap
    horizon: str | None = None
    local_horizon: str | None = None  # the same for the unsent search on our server (our server's clock)
    unreachable_since: str | None = None
    last_error: str | None = None
    #: our clock when a poll of the partner last read every page (kept to within POLLED_AT_EVERY):
    #: "when we last heard from this partner", read by the exchange-not-synced gap rule
    polled_at: str | None = None
    #: set once a cycle went through every Task the partner owns: each sent one then carries the
    #: identifier naming its partner (links written by older versions had none), so ``exchange status``
    #: may search by it
    indexed: str | None = None
    resource: dict[str, Any] | None = None

    def advance(self, remote_id: str, version: str, updated: str) -> None:
        self.seen[remote_id] = (version, updated)
        if self.value is None or instant(updated) > instant(self.value):
            self.value = updated

    def conflict(self, task_id: str) -> None:
        self.conflicts.add(task_id)
        self.added.add(task_id)

    def sent(self, updated: str) -> None:
        if self.local is None or instant(updated) > instant(self.local):
            self.local = updated

    def is_seen(self, remote_id: str, version: str) -> bool:
        return self.seen.get(remote_id, ("", ""))[0] == version

    def since(self, overlap: timedelta, local: bool = False) -> str | None:
        """The search bound: the cursor moved back by the overlap (commits that land out of order),
        but never before the horizon of the last complete search."""
        value, horizon = (self.local, self.local_horizon) if local else (self.value, self.horizon)
        if value is None:
            return None
        moment = instant(value) - overlap
        if horizon and instant(horizon) > moment:
            moment = instant(horizon)
        return _text(moment)

    def searched_at(self, server_time: str | None, overlap: timedelta, local: bool = False) -> None:
        """A search read every page; its first answer was at ``server_time`` (that server's clock).
        Kept only while it still narrows the next search (up to the cursor): an idle cycle then
        writes nothing."""
        value, held = (self.local, self.local_horizon) if local else (self.value, self.horizon)
        if not server_time or value is None or (held and instant(held) >= instant(value)):
            return
        horizon = _text(instant(server_time) - overlap)
        if local:
            self.local_horizon = horizon
        else:
            self.horizon = horizon

    def polled(self, now: datetime) -> None:
        """A poll read every page at ``now`` (our clock). Recorded only when the stored moment is
        ``POLLED_AT_EVERY`` old, so most idle cycles still write nothing: the stored value may lag the
        last complete poll by up to that much (the gap rule then flags after N - 1 to N hours of silence)."""
        held = instant(self.polled_at) if self.polled_at else None
        if held is None or not now - POLLED_AT_EVERY < held <= now:  # stale, or ahead of our clock
            self.polled_at = _text(now)

    def prune(self, overlap: timedelta) -> None:
        """Forget versions older than the overlap window: the search will not return them again."""
        if self.value is None:
            return
        floor = instant(self.value) - overlap
        self.seen = {k: v for k, v in self.seen.items() if instant(v[1]) >= floor}


#: the state's single-valued fields: sub-extension url -> Cursor attribute (in the order they are written)
SCALARS = {
    "cursor": "value",
    "local": "local",
    "subscription": "subscription",
    "horizon": "horizon",
    "local-horizon": "local_horizon",
    "unreachable-since": "unreachable_since",
    "last-error": "last_error",
    "links-indexed": "indexed",
    "polled-at": "polled_at",
}


def _text(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _system(exchange: Exchange) -> str:
    return f"{exchange.namespace_base.rstrip('/')}/{STATE_ID}"


def _from_resource(partner: str, resource: dict[str, Any], url: str) -> Cursor:
    cursor = Cursor(partner, resource=resource)
    for ext in resource.get("extension") or []:
        if ext.get("url") != url:
            continue
        for sub in ext.get("extension") or []:
            key, value = sub.get("url"), str(sub.get("valueString") or "")
            if key in SCALARS:
                setattr(cursor, SCALARS[key], value)
            elif key == "seen" and value.count("|") == 2:
                rid, version, updated = value.split("|")
                cursor.seen[rid] = (version, updated)
            elif key == "pending":
                cursor.pending.add(value)
            elif key == "conflict":
                cursor.conflicts.add(value)
            elif key == "forwarded":
                cursor.forwarded.add(value)
    return cursor


def _to_resource(exchange: Exchange, cursor: Cursor) -> dict[str, Any]:
    subs: list[dict[str, Any]] = []
    if cursor.value:
        subs.append({"url": "cursor", "valueString": cursor.value})
    subs += [{"url": "seen", "valueString": f"{k}|{v}|{u}"} for k, (v, u) in sorted(cursor.seen.items())]
    subs += [{"url": "pending", "valueString": t} for t in sorted(cursor.pending)]
    subs += [{"url": "conflict", "valueString": t} for t in sorted(cursor.conflicts)]
    subs += [{"url": "forwarded", "valueString": t} for t in sorted(cursor.forwarded)]
    subs += [
        {"url": key, "valueString": value}
        for key, attr in SCALARS.items()
        if key != "cursor" and (value := getattr(cursor, attr))
    ]
    resource: dict[str, Any] = {
        "resourceType": "Basic",
        "identifier": [{"system": _system(exchange), "value": cursor.partner}],
        "code": {"text": "fhircare exchange sync state"},
        "extension": [{"url": f"{exchange.namespace_base.rstrip('/')}/{STATE}", "extension": subs}],
    }
    if cursor.resource and cursor.resource.get("id"):
        resource["id"] = cursor.resource["id"]
    return resource


def load_cursor(exchange: Exchange, partner: str) -> Cursor:
    """The partner's state (one search), or an empty one created on first use."""
    found = exchange.local.search("Basic", {"identifier": f"{_system(exchange)}|{partner}"}).first()
    url = f"{exchange.namespace_base.rstrip('/')}/{STATE}"
    if found is not None:
        return _from_resource(partner, found, url)
    created = exchange.local.create(
        _to_resource(exchange, Cursor(partner)), if_none_exist=f"identifier={_system(exchange)}|{partner}"
    )
    return _from_resource(partner, created, url)


def read_cursors(exchange: Exchange, partners: set[str]) -> dict[str, Cursor]:
    """The named partners' states as they stand, in one search; one never saved is absent (nothing is
    created: for pages that only show reachability)."""
    if not partners:
        return {}
    system = _system(exchange)
    wanted = ",".join(f"{system}|{name}" for name in sorted(partners))
    url = f"{exchange.namespace_base.rstrip('/')}/{STATE}"
    found: dict[str, Cursor] = {}
    for resource in exchange.local.search("Basic", {"identifier": wanted}):
        for ident in resource.get("identifier") or []:
            name = ident.get("value") if ident.get("system") == system else None
            if name in partners:
                found[name] = _from_resource(name, resource, url)
    return found


def _merge(mine: Cursor, theirs: Cursor) -> Cursor:
    """Two savers at once: keep the newer cursor and every seen version of both."""
    merged = Cursor(mine.partner, resource=theirs.resource)
    merged.seen = {**theirs.seen, **mine.seen}
    for candidate in (theirs.value, mine.value):
        if candidate and (merged.value is None or instant(candidate) > instant(merged.value)):
            merged.value = candidate
    merged.pending = theirs.pending  # changed only through update_pending, which reads it fresh
    merged.conflicts = theirs.conflicts | mine.added
    merged.forwarded = theirs.forwarded
    merged.added = mine.added
    merged.subscription = theirs.subscription or mine.subscription
    merged.horizon = min((v for v in (mine.horizon, theirs.horizon) if v), key=instant, default=None)
    merged.local_horizon = min(
        (v for v in (mine.local_horizon, theirs.local_horizon) if v), key=instant, default=None
    )
    merged.local = max((v for v in (mine.local, theirs.local) if v), key=instant, default=None)
    merged.unreachable_since = mine.unreachable_since
    merged.last_error = mine.last_error
    merged.indexed = mine.indexed or theirs.indexed
    merged.polled_at = max((v for v in (mine.polled_at, theirs.polled_at) if v), key=instant, default=None)
    return merged


def save_cursor(exchange: Exchange, cursor: Cursor, overlap: timedelta) -> Cursor:
    """Write the state with If-Match; on a concurrent save, merge with it and write again."""
    for _ in range(10):
        cursor.prune(overlap)
        assert cursor.resource is not None
        try:
            written = exchange.local.update(
                _to_resource(exchange, cursor), if_match=version_of(cursor.resource)
            )
            cursor.resource = written
            cursor.added = set()
            return cursor
        except PreconditionFailed:
            cursor = _merge(cursor, load_cursor(exchange, cursor.partner))
    raise PreconditionFailed(f"sync state of partner {cursor.partner} kept changing under us")


def update_pending(exchange: Exchange, partner: str, task_id: str, add: bool, kind: str = "pending") -> None:
    """Add (or drop) one of our Tasks to the partner's pending cancels (or open conflicts), with If-Match."""
    for _ in range(10):
        cursor = load_cursor(exchange, partner)
        held = {"pending": cursor.pending, "conflict": cursor.conflicts, "forwarded": cursor.forwarded}[kind]
        if (task_id in held) == add:
            return
        (held.add if add else held.discard)(task_id)
        try:
            save_once(exchange, cursor)
            return
        except PreconditionFailed:
            continue


def save_once(exchange: Exchange, cursor: Cursor) -> None:
    assert cursor.resource is not None
    cursor.resource = exchange.local.update(
        _to_resource(exchange, cursor), if_match=version_of(cursor.resource)
    )
