"""The requester's later edits reach the partner: a note, a priority, a due date changed on our Task
after it was sent is put on the partner's Task with If-Match - after catching up with the partner's
versions, so each still reaches ours in order. The partner's Task already final: a conflict, nothing
overwritten on either side."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, NamedTuple

from ..care.task_states import TERMINAL
from ..errors import PreconditionFailed
from .apply import apply_remote, write_version
from .conflicts import after_catch_up, conflict_task_entry
from .context import Exchange, PartnerThrottled, PartnerUnreachable
from .links import Conflict, field_digests, read_link, updated_of, version_of, write_link
from .partners import Partner
from .send import COPIED, OWNED, remote_task


def pushed_digests(exchange: Exchange, ours: dict[str, Any]) -> tuple[str, ...]:
    """Digests of what the partner's Task should hold of our Task's requester-owned fields."""
    return field_digests(remote_task(exchange, ours), COPIED)


class Pushed(NamedTuple):
    """What putting our edit on the partner's Task did."""

    outcome: str  # unchanged | pushed | conflict
    applied: int  # remote versions applied while catching up
    #: the link holds an open conflict afterwards: the partner's Task final, or a remote version the
    #: catch-up met that clashed with ours (recorded by apply_remote) - to be counted in the sync state
    conflict_open: bool = False


def push_if_changed(exchange: Exchange, partner: Partner, ours: dict[str, Any]) -> Pushed:
    """Put our edited requester-owned fields on the partner's Task, after catching up with its versions.
    Raises PreconditionFailed when our Task moved meanwhile (and the partner's errors): a conflict the
    catch-up recorded before is counted all the same."""
    caught_up: list[bool] = []
    try:
        return _push(exchange, partner, ours, caught_up)
    except (PartnerUnreachable, PartnerThrottled, PreconditionFailed):
        link = read_link(ours, exchange.namespace_base)
        if caught_up and link is not None:
            after_catch_up(exchange, str(ours["id"]), link)
        raise


def _push(exchange: Exchange, partner: Partner, ours: dict[str, Any], caught_up: list[bool]) -> Pushed:
    link = read_link(ours, exchange.namespace_base)
    if link is None or not link.pushed:
        return Pushed("unchanged", 0)
    wanted = pushed_digests(exchange, ours)
    if wanted == link.pushed:
        return Pushed("unchanged", 0)
    applied = 0
    remote = exchange.remote(partner.name)
    rid = link.remote.rstrip("/").rsplit("/", 1)[1]
    for _ in range(5):
        current = remote.read("Task", rid)
        status = str(current.get("status"))
        if status in TERMINAL:
            clash = Conflict(str(ours.get("status")), version_of(ours), status, version_of(current))
            marked = replace(link, conflict=clash, pushed=wanted)
            write_version(
                exchange,
                write_link(ours, marked, exchange.namespace_base),
                [conflict_task_entry(exchange, ours, partner.name, clash)],
            )
            return Pushed("conflict", applied, True)
        caught_up.append(True)
        caught, ours = apply_remote(exchange, partner, current, ours)  # catch up first
        applied += caught.applied
        link = read_link(ours, exchange.namespace_base) or link
        body = dict(current)
        projection = remote_task(exchange, ours)
        for name in COPIED:
            if projection.get(name) is None:
                body.pop(name, None)
            else:
                body[name] = projection[name]
        try:
            written = remote.update(body, if_match=version_of(current))
        except PreconditionFailed:
            continue
        done = replace(
            link,
            pushed=wanted,
            owned=field_digests(written, OWNED),
            version=version_of(written),  # our own write: nothing in it to apply
            updated=updated_of(written),
        )
        write_version(exchange, write_link(ours, done, exchange.namespace_base))
        return Pushed("pushed", applied, done.conflict is not None)
    raise PreconditionFailed("the partner's Task kept changing while our edit was being put on it")
