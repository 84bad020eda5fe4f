"""care-plan: a new plan, or a revision of one (If-Match; the server keeps the earlier versions)."""

from __future__ import annotations

from typing import Any

from ..mapping import BuildContext, PlannedEntry
from ..mapping.updates import add_references
from .base import RunState, Workflow, update_entry


def activity_of(item: dict[str, Any], codes: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A CarePlan.activity from a payload activity: a reference, or an inline detail."""
    if "reference" in item:
        return {"reference": {"reference": item["reference"]}}
    detail = item["detail"]
    out: dict[str, Any] = {
        "status": detail.get("status", "not-started"),
        "description": detail["description"],
    }
    code = detail.get("code")
    if isinstance(code, dict):
        out["code"] = {"coding": [{k: code[k] for k in ("system", "code", "display") if code.get(k)}]}
    elif isinstance(code, str) and code in codes.get("services", {}):
        found = codes["services"][code]
        out["code"] = {"coding": [dict(found)], "text": found.get("display", code)}
    if detail.get("scheduled"):
        out["scheduledString"] = detail["scheduled"]
    return {"detail": out}


class CarePlanWorkflow(Workflow):
    name = "care-plan"
    description = "Write or revise the personalized care plan (goals and activities)"
    merge_on_conflict = True
    reads_fields = ("care_plan",)
    updates_types = ("CarePlan",)

    def entries(self, state: RunState, ctx: BuildContext) -> list[PlannedEntry]:
        payload = state.payload
        payload["_new_plan"] = not payload.get("care_plan")
        payload["_activities"] = [
            activity_of(a, self.mappings.codes) for a in payload.get("activities") or []
        ]
        return super().entries(state, ctx)

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
        activities = list(plan.get("activity") or [])
        for activity in payload["_activities"]:
            if activity not in activities:
                activities.append(activity)
        if activities:
            plan["activity"] = activities
        return [update_entry(plan, "care_plan", profile="caseload-care-plan")]
