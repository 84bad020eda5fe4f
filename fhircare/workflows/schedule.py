"""schedule: book, reschedule, cancel, no-show, arrive, fulfil. Status changes are If-Match updates
checked against the Appointment status flow before anything is written."""

from __future__ import annotations

import copy
from typing import Any

from ..errors import IllegalTransition, Issue
from ..mapping import BuildContext, PlannedEntry
from .base import RunState, Workflow, update_entry

# R4 Appointment status flow, as coordinators use it
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
TARGET = {
    "cancel": "cancelled",
    "noshow": "noshow",
    "arrive": "arrived",
    "fulfill": "fulfilled",
    "reschedule": "cancelled",
}


def check_appointment_transition(current: str, target: str) -> None:
    allowed = APPOINTMENT_TRANSITIONS.get(current, frozenset())
    if target not in allowed:
        raise IllegalTransition(
            f"an Appointment cannot go from {current} to {target}",
            [Issue("error", "business-rule", f"{current} -> {target} is not allowed", ("$.action",))],
        )


def _patient_of(appointment: dict[str, Any]) -> str | None:
    for participant in appointment.get("participant") or []:
        ref = (participant.get("actor") or {}).get("reference")
        if isinstance(ref, str) and ref.startswith("Patient/"):
            return ref
    return None


class Schedule(Workflow):
    name = "schedule"
    description = "Book, reschedule, cancel, mark no-show, arrive or fulfil an appointment"
    reads_fields = ("appointment",)
    updates_types = ("Appointment",)

    def actor(self, payload: dict[str, Any]) -> str | None:
        value = payload.get("coordinator") or payload.get("practitioner")
        return str(value) if value else None

    def entries(self, state: RunState, ctx: BuildContext) -> list[PlannedEntry]:
        payload = state.payload
        action = payload["action"]
        if action == "reschedule":
            old = state.resource(payload["appointment"])
            payload["_participants"] = copy.deepcopy(old.get("participant") or [])
            payload.setdefault("minutes", old.get("minutesDuration") or 30)
            payload["patient"] = _patient_of(old)
            refs = [b.get("reference") for b in old.get("basedOn") or [] if isinstance(b, dict)]
            payload["referral"] = refs[0] if refs else None
            payload["_description"] = old.get("description")
        payload["_books"] = action in ("book", "reschedule")
        return super().entries(state, ctx)

    def updates(self, state: RunState, created: dict[str, PlannedEntry]) -> list[PlannedEntry]:
        payload = state.payload
        action = payload["action"]
        if action == "book":
            return []
        appointment = dict(state.resource(payload["appointment"]))
        target = TARGET[action]
        check_appointment_transition(str(appointment.get("status")), target)
        appointment["status"] = target
        if target in ("cancelled", "noshow") and payload.get("reason"):
            appointment["cancelationReason"] = {"text": payload["reason"]}
        if action == "reschedule":
            appointment["cancelationReason"] = {"text": payload.get("reason") or "Rescheduled"}
        state.patient = _patient_of(appointment)
        return [update_entry(appointment, "appointment_change")]
