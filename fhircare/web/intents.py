"""One request id per intended action, fixed when its form is first rendered.

A form's intent is a key (the workflow, the patient, what the form was opened about; for a task, the
task and the version the form was rendered from). The first render of an intent draws a request id and
keeps it in the caller's session; every later render of the same intent, a Back-and-resubmit and a
double submit carry the same id, so the workflow's idempotency makes them one action. After a success
the intent is marked done: its form says so and offers a fresh start (a new id) explicitly."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

from flask import session

#: intents a session remembers (the oldest are forgotten first)
KEPT = 24


def _key(intent: str) -> str:
    return hashlib.sha256(intent.encode()).hexdigest()[:20]  # no PHI in the session's keys


def _table() -> dict[str, Any]:
    table = session.get("intents")
    return dict(table) if isinstance(table, dict) else {}


def _save(table: dict[str, Any]) -> None:
    while len(table) > KEPT:
        table.pop(next(iter(table)))
    session["intents"] = table


def request_id_for(intent: str, fresh: bool = False) -> str:
    """The request id of ``intent``: drawn at its first render (or when ``fresh`` asks for a new start)."""
    table, key = _table(), _key(intent)
    held = table.get(key)
    if fresh or not isinstance(held, dict) or not isinstance(held.get("id"), str):
        held = {"id": f"web-{uuid.uuid4().hex}", "done": False}
        table.pop(key, None)
        table[key] = held
        _save(table)
    return str(held["id"])


def mark_done(request_id: str) -> None:
    """The action of ``request_id`` went through: its intent's form now says so."""
    table = _table()
    for held in table.values():
        if isinstance(held, dict) and held.get("id") == request_id:
            held["done"] = True
    _save(table)


def already_done(intent: str) -> bool:
    held = _table().get(_key(intent))
    return isinstance(held, dict) and bool(held.get("done"))
