"""One request id per intended action: fixed when its form is first rendered, consumed when it succeeds.

A form's intent is a key (the workflow, the patient, what the form was opened about; for a task, the
task and the version the form was rendered from). The first render of an intent draws a request id and
keeps it in the caller's session; a re-render of a refused form, Back-and-resubmit and a double submit
carry the same id, so the workflow's idempotency makes them one action (the repeat replays the first
result). When a submission succeeds the id is consumed: the next render of that form (a second,
deliberate visit: move the appointment again) draws a new id, so it is a new action without a warning.

Back after a success fetches the form again (pages are ``no-store``), so the server cannot tell it from a
new visit: the form's script (``static/resend.js``) keeps the id it sent in that history entry's state and
puts it back when the entry is returned to, so resubmitting it replays instead of acting twice."""

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
    """The request id of ``intent``: drawn at its first render, after its last one was consumed by a
    success, or when ``fresh`` asks for a new start."""
    table, key = _table(), _key(intent)
    held = table.get(key)
    if fresh or not isinstance(held, dict) or not isinstance(held.get("id"), str) or held.get("done"):
        held = {"id": f"web-{uuid.uuid4().hex}", "done": False}
        table.pop(key, None)
        table[key] = held
        _save(table)
    return str(held["id"])


def mark_done(request_id: str) -> None:
    """The action of ``request_id`` went through: its id is consumed (the next render draws another)."""
    table = _table()
    for held in table.values():
        if isinstance(held, dict) and held.get("id") == request_id:
            held["done"] = True
    _save(table)


def already_done(intent: str) -> bool:
    """Whether the id ``intent`` holds was consumed and no render has drawn a new one since."""
    held = _table().get(_key(intent))
    return isinstance(held, dict) and bool(held.get("done"))
