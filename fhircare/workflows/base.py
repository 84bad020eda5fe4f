"""The common run of every workflow: validate -> read -> plan -> check -> write one transaction.

A workflow module subclasses :class:`Workflow` and adds only what its mapping cannot say: which
existing resources it must read (``reads``), how it changes them (``updates``), and any rule
that spans fields (``check``). The run itself is split by job: ``hooks.py`` (the defaults),
``plan.py`` (entries, Provenance, profile checks; no network), ``reads.py`` (the read batch),
``execute.py`` (the transaction and its retries), ``repeats.py`` (repeat or new action).
"""

from __future__ import annotations

from .execute import Executor
from .plan import content_request_id, update_entry
from .reads import provenance_search
from .state import PROVENANCE_ENTRY, VERIFY_MODES, AccessGuard, RunState, WorkflowResult


class Workflow(Executor):
    """Base of the workflow modules."""


__all__ = [
    "PROVENANCE_ENTRY",
    "VERIFY_MODES",
    "AccessGuard",
    "RunState",
    "Workflow",
    "WorkflowResult",
    "content_request_id",
    "provenance_search",
    "update_entry",
]
