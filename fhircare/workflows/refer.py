"""refer: ServiceRequest + fulfilment Task; with ``care_plan``, the plan's activities gain the referral."""

from __future__ import annotations

from typing import Any

from ..mapping import PlannedEntry
from .base import RunState, Workflow, update_entry


def add_activity(care_plan: dict[str, Any], reference: str) -> dict[str, Any]:
    """A copy of a CarePlan with one more activity pointing at ``reference`` (unless already there)."""
    plan = dict(care_plan)
    activities = list(plan.get("activity") or [])
    if not any((a.get("reference") or {}).get("reference") == reference for a in activities):
        activities.append({"reference": {"reference": reference}})
    plan["activity"] = activities
    return plan


class Refer(Workflow):
    name = "refer"
    description = "Refer a patient to a specialist, program or community service (ServiceRequest + Task)"
    merge_on_conflict = True
    reads_fields = ("care_plan",)
    updates_types = ("CarePlan",)

    def updates(self, state: RunState, created: dict[str, PlannedEntry]) -> list[PlannedEntry]:
        reference = state.payload.get("care_plan")
        if not reference:
            return []
        plan = add_activity(state.resource(reference), created["referral"].full_url)
        return [update_entry(plan, "care_plan")]
