"""assess: the assessment's answers, needs (health concerns) and goals; the plan gains them."""

from __future__ import annotations

from typing import Any

from ..mapping import PlannedEntry
from .base import RunState, Workflow, update_entry


def add_references(resource: dict[str, Any], element: str, references: list[str]) -> dict[str, Any]:
    """A copy of ``resource`` whose list ``element`` also holds ``references`` (no duplicates)."""
    changed = dict(resource)
    current = list(changed.get(element) or [])
    present = {item.get("reference") for item in current if isinstance(item, dict)}
    current += [{"reference": ref} for ref in references if ref not in present]
    if current:
        changed[element] = current
    return changed


class Assess(Workflow):
    name = "assess"
    description = "Record the needs assessment (answers, health concerns, goals) and link them to the plan"
    merge_on_conflict = True
    reads_fields = ("care_plan",)
    updates_types = ("CarePlan",)

    def updates(self, state: RunState, created: dict[str, PlannedEntry]) -> list[PlannedEntry]:
        reference = state.payload.get("care_plan")
        if not reference:
            return []
        needs = [e.full_url for name, e in created.items() if name.startswith("need/")]
        goals = [e.full_url for name, e in created.items() if name.startswith("goal/")]
        plan = add_references(state.resource(reference), "addresses", needs)
        plan = add_references(plan, "goal", goals)
        return [update_entry(plan, "care_plan")]
