"""schedule: book, reschedule, cancel, no-show, arrive, fulfil. Status changes are If-Match updates
checked against the Appointment status flow before anything is written."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from .. import clock
from ..care.appointment_states import check_appointment_transition
from ..errors import Issue, UnresolvedReference
from ..mapping import BuildContext, PlannedEntry
from ..mapping.transforms import TRANSFORMS, parse_datetime
from .base import RunState, Workflow, update_entry

_add_days = TRANSFORMS["add_days"]

TARGET = {
    "cancel": "cancelled",
    "noshow": "noshow",
    "arrive": "arrived",
    "fulfill": "fulfilled",
    "reschedule": "cancelled",
}


# what an appointment's active reminder becomes when the appointment changes
REMINDER_AFTER = {"cancelled": "revoked", "noshow": "revoked", "fulfilled": "completed"}


def _patient_of(appointment: dict[str, Any]) -> str | None:
    for participant in appointment.get("participant") or []:
        ref = (participant.get("actor") or {}).get("reference")
        if isinstance(ref, str) and ref.startswith("Patient/"):
            return ref
    return None


class Schedule(Workflow):
    name = "schedule"
    description = "Book, reschedule, cancel, mark no-show, arrive or fulfil an appointment"
    updates_types = ("Appointment", "CommunicationRequest")

    def actor(self, payload: dict[str, Any]) -> str | None:
        value = payload.get("coordinator") or payload.get("practitioner")
        return str(value) if value else None

    def entries(self, state: RunState, ctx: BuildContext) -> list[PlannedEntry]:
        payload = state.payload
        action = payload["action"]
        if action == "reschedule":  # the new appointment is for the same patient, referral and length
            old = state.resource(payload["appointment"])
            payload.setdefault("minutes", old.get("minutesDuration") or 30)
            payload["patient"] = _patient_of(old)
            refs = [b.get("reference") for b in old.get("basedOn") or [] if isinstance(b, dict)]
            payload["referral"] = refs[0] if refs else None
        return super().entries(state, ctx)

    def check(self, payload: dict[str, Any], now: datetime | None = None) -> list[Issue]:
        start = payload.get("start")
        if not start or payload.get("records_past") or parse_datetime(start) >= (now or clock.now()):
            return []
        message = "the start has passed: say records_past: true to record a past booking"
        return [Issue("error", "business-rule", message, ("$.start",))]

    def reads(self, payload: dict[str, Any]) -> list[str]:
        reference = payload.get("appointment")
        if not reference or "?" in str(reference):
            return [str(reference)] if reference else []
        # the appointment and its active reminders (CommunicationRequest.basedOn), which a change ends
        query = urlencode({"based-on": reference, "status": "active"}, safe="/")
        return [str(reference), f"CommunicationRequest?{query}"]

    def _collect(self, state: RunState, reference: str, result: dict[str, Any]) -> None:
        try:
            super()._collect(state, reference, result)
        except UnresolvedReference:
            if not reference.startswith("CommunicationRequest?"):
                raise
            # an appointment without a reminder (booked in the past, or by another system): none to end

    def updates(self, state: RunState, created: dict[str, PlannedEntry]) -> list[PlannedEntry]:
        payload = state.payload
        action = payload["action"]
        if action == "book":
            return []
        appointment = dict(state.resource(payload["appointment"]))
        target = TARGET[action]
        check_appointment_transition(str(appointment.get("status")), target)
        appointment["status"] = target
        if target == "cancelled" and payload.get("reason"):
            appointment["cancelationReason"] = {"text": payload["reason"]}
        if target == "noshow" and payload.get("reason"):
            # R4 app-4 (as validators apply it) allows cancelationReason on cancelled appointments only
            appointment["comment"] = f"No-show: {payload['reason']}"
        if action == "reschedule":
            appointment["cancelationReason"] = {"text": payload.get("reason") or "Rescheduled"}
        state.patient = _patient_of(appointment)
        return [update_entry(appointment, "appointment_change"), *self._reminders_after(state, target)]

    def _reminders_after(self, state: RunState, target: str) -> list[PlannedEntry]:
        """The appointment's active reminders, revoked (cancelled, no-show) or completed (it happened)."""
        status = REMINDER_AFTER.get(target)
        if status is None:
            return []
        appointment = str(state.payload["appointment"])
        changed = []
        for key, found in sorted(state.found.items()):
            based_on = [b.get("reference") for b in found.get("basedOn") or [] if isinstance(b, dict)]
            if (
                key.startswith("CommunicationRequest/")
                and found.get("status") == "active"
                and appointment in based_on
            ):
                changed.append(update_entry({**found, "status": status}, f"reminder/{key.split('/', 1)[1]}"))
        return changed
