"""What the launcher changes in SEKMET (see :mod:`fhircare.server.launcher`): fhircare's extra search
parameters, atomic conditional create, an index for ``_include`` and the query planner's statistics."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .search_params import EXTRA_SEARCH_PARAMS


def add_search_params() -> list[str]:
    """Register fhircare's extra search parameters in SEKMET's table; returns ``Type:name`` of those added."""
    from sekmet.fhir.search_params import PARAMS, SearchParam

    added = []
    for rtype, params in EXTRA_SEARCH_PARAMS.items():
        table = PARAMS.setdefault(rtype, {})
        for name, (kind, paths, target) in params.items():
            if name in table:
                continue
            table[name] = SearchParam(name, kind, tuple(paths), target)
            added.append(f"{rtype}:{name}")
    return added


def make_conditional_create_atomic(service: Any) -> None:
    """Run SEKMET's check-then-create of ``If-None-Exist`` under the store's transaction lock."""
    original: Callable[..., Any] = service.create

    def create(rtype: str, body: Any, if_none_exist: str | None = None, **kwargs: Any) -> Any:
        if not if_none_exist:
            return original(rtype, body, if_none_exist=None, **kwargs)
        with service.store.transaction():
            return original(rtype, body, if_none_exist=if_none_exist, **kwargs)

    service.create = create


def add_include_index(store: Any) -> None:
    """An index for ``_include``: SEKMET looks up one resource's references by (type, id, param), and
    without this index SQLite scans every row of that parameter (a 5,000-task worklist: 0.4 s a page)."""
    with store.lock:
        store.conn.execute("CREATE INDEX IF NOT EXISTS fhircare_idx_res_param ON idx(type, id, param)")


# Statistics for SQLite's query planner (``sqlite_stat1`` rows: table, index, "rows, then rows per
# distinct value of each leading column"), the shape ANALYZE measured on a 600-patient demo store
# (118,172 index rows). Without statistics SQLite guesses ~10 rows for any equality on (type, param)
# and answers ``identifier=sys|a,sys2|a`` or ``_tag=...`` (each workflow run's request-id checks) by
# walking every row of that parameter through idx_num: 6 ms a search at 1,000 patients and growing
# with the store. With them it looks up each (type, param, code) in idx_code (0.03 ms at any size).
# Fixed rather than measured on the live store: ANALYZE on a new store has nothing to measure, and
# rerunning it as the store grows would take seconds each time and make plans change mid-run.
PLANNER_STATS: dict[str, dict[str, str]] = {
    "idx": {
        "idx_res": "118172 6220 13",
        "idx_code": "118172 6220 684 6",
        "idx_ref": "118172 6952 20",
        "idx_s": "118172 6220 684 6",
        "idx_refp": "118172 6220 684 607 6",
        "idx_date": "118172 6220 684 11",
        "idx_num": "118172 6220 684 684",
        "fhircare_idx_res_param": "118172 6220 13 2",
    },
    "resources": {"sqlite_autoindex_resources_1": "9795 516 1"},
    "versions": {"sqlite_autoindex_versions_1": "11475 604 2 1"},
}


def add_planner_statistics(store: Any) -> None:
    """Give SQLite's query planner fixed statistics for SEKMET's tables (see ``PLANNER_STATS``)."""
    with store.lock:
        conn = store.conn
        existing = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
        conn.execute("ANALYZE kv")  # creates sqlite_stat1 (kv is a tiny table: nothing to measure)
        for table, indexes in PLANNER_STATS.items():
            conn.execute("DELETE FROM sqlite_stat1 WHERE tbl = ?", (table,))
            conn.executemany(
                "INSERT INTO sqlite_stat1(tbl, idx, stat) VALUES (?, ?, ?)",
                [(table, index, stat) for index, stat in indexes.items() if index in existing],
            )
        conn.execute("ANALYZE sqlite_schema")  # the planner reloads the statistics
