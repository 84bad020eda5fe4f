"""The R4 Appointment status flow, as coordinators use it."""

from __future__ import annotations

from ..errors import IllegalTransition, Issue

APPOINTMENT_TRANSITIONS: dict[str, frozenset[str]] = {
    "proposed": frozenset({"pending", "booked", "cancelled", "noshow"}),
    "pending": frozenset({"booked", "cancelled", "noshow"}),
    "booked": frozenset({"arrived", "checked-in", "cancelled", "noshow"}),
    "checked-in": frozenset({"arrived", "fulfilled", "cancelled"}),
    "arrived": frozenset({"fulfilled"}),
    "waitlist": frozenset({"booked", "cancelled"}),
    "fulfilled": frozenset(),
    "cancelled": frozenset(),
    "noshow": frozenset(),
    "entered-in-error": frozenset(),
}


def check_appointment_transition(current: str, target: str) -> None:
    """Refuse a status change the flow does not allow (IllegalTransition naming ``$.action``)."""
    allowed = APPOINTMENT_TRANSITIONS.get(current, frozenset())
    if target not in allowed:
        raise IllegalTransition(
            f"an Appointment cannot go from {current} to {target}",
            [Issue("error", "business-rule", f"{current} -> {target} is not allowed", ("$.action",))],
        )
