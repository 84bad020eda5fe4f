"""The FHIR R4 Task state machine (http://hl7.org/fhir/R4/task.html#statemachine), as coordinators use it."""

from __future__ import annotations

from ..errors import IllegalTransition, Issue

TRANSITIONS: dict[str, frozenset[str]] = {
    "draft": frozenset({"requested", "cancelled"}),
    "requested": frozenset({"received", "accepted", "rejected", "ready", "cancelled"}),
    "received": frozenset({"accepted", "rejected", "cancelled"}),
    "accepted": frozenset({"ready", "in-progress", "cancelled"}),  # on-hold only once work has started
    "ready": frozenset({"in-progress", "on-hold", "failed", "completed", "cancelled"}),
    "in-progress": frozenset({"on-hold", "failed", "completed", "cancelled"}),
    "on-hold": frozenset({"in-progress", "ready", "failed", "cancelled"}),
    "completed": frozenset(),
    "rejected": frozenset(),
    "cancelled": frozenset(),
    "failed": frozenset(),
    "entered-in-error": frozenset(),
}
#: statuses a Task never leaves
TERMINAL = frozenset(s for s, nxt in TRANSITIONS.items() if not nxt)
#: statuses of a Task someone still has to act on (the worklist, the gap rules)
OPEN_STATUSES = ("draft", "requested", "received", "accepted", "ready", "in-progress", "on-hold")
#: statuses a statusReason explains (SDOHCC 3.0.0 Task.statusReason: rejected, cancelled, on-hold, failed)
REASONED = frozenset({"rejected", "cancelled", "on-hold", "failed"})


def check_transition(current: str, target: str) -> None:
    """Refuse a move the state machine does not allow (IllegalTransition naming ``$.to``)."""
    if target == "entered-in-error":
        return  # any record can be marked as entered in error
    if current == target:
        raise IllegalTransition(f"the Task is already {current}")
    allowed = TRANSITIONS.get(current)
    if allowed is None:
        raise IllegalTransition(f"the Task has an unknown status {current!r}; fhircare will not move it")
    if target not in allowed:
        options = ", ".join(sorted(allowed)) or "none: it is final"
        raise IllegalTransition(
            f"a Task cannot go from {current} to {target} (allowed from {current}: {options})",
            [Issue("error", "business-rule", f"{current} -> {target} is not a Task transition", ("$.to",))],
        )
