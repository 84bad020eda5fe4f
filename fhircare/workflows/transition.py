"""transition: discharge or a move between settings; the follow-up is due within 7 days."""

from __future__ import annotations

from datetime import date
from typing import Any

from ..errors import Issue
from ..mapping import PlannedEntry
from .base import RunState, Workflow, update_entry

FOLLOW_UP_WITHIN_DAYS = 7


class Transition(Workflow):
    name = "transition"
    description = "Discharge or move between settings: transition plan, services, 7-day follow-up, hand-off"
    reads_fields = ("from_plan",)
    updates_types = ("CarePlan",)

    def check(self, payload: dict[str, Any]) -> list[Issue]:
        due = payload.get("follow_up_due")
        if not due:
            return []
        days = (date.fromisoformat(due) - date.fromisoformat(payload["discharge_date"])).days
        if 0 <= days <= FOLLOW_UP_WITHIN_DAYS:
            return []
        return [
            Issue(
                "error",
                "business-rule",
                f"the follow-up must be due within {FOLLOW_UP_WITHIN_DAYS} days after discharge_date (it is {days})",
                ("$.follow_up_due",),
            )
        ]

    def updates(self, state: RunState, created: dict[str, PlannedEntry]) -> list[PlannedEntry]:
        reference = state.payload.get("from_plan")
        if not reference:
            return []
        old = dict(state.resource(reference))
        if old.get("status") in ("completed", "revoked", "entered-in-error"):
            return []
        old["status"] = "completed"
        period = dict(old.get("period") or {})
        period.setdefault("end", state.payload["discharge_date"])
        old["period"] = period
        return [update_entry(old, "from_plan")]
