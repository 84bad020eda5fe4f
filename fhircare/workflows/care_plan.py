"""care-plan: a new plan, or a revision of one (If-Match; the server keeps the earlier versions)."""

from __future__ import annotations

from ..mapping import PlannedEntry
from ..mapping.updates import add_references
from .base import RunState, Workflow, update_entry
from .derive import activities


class CarePlanWorkflow(Workflow):
    name = "care-plan"
    description = "Write or revise the personalized care plan (goals and activities)"
    merge_on_conflict = True
    reads_fields = ("care_plan",)
    updates_types = ("CarePlan",)

    def updates(self, state: RunState, created: dict[str, PlannedEntry]) -> list[PlannedEntry]:
        payload = state.payload
        if not payload.get("care_plan"):
            return []
        plan = dict(state.resource(payload["care_plan"]))
        for key in ("title", "description"):
            if payload.get(key):
                plan[key] = payload[key]
        if payload.get("period"):
            plan["period"] = {**(plan.get("period") or {}), **payload["period"]}
        plan = add_references(plan, "contributor", [payload["author"]] if payload.get("author") else [])
        plan = add_references(plan, "goal", [e.full_url for n, e in created.items() if n.startswith("goal/")])
        current = list(plan.get("activity") or [])
        current += [a for a in activities(state, self.mappings.codes) if a not in current]
        if current:
            plan["activity"] = current
        return [update_entry(plan, "care_plan", profile="caseload-care-plan")]
