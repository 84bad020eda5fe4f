"""task: a Task status change along the FHIR R4 Task state machine, and/or a new owner.

The Task (and its focus) are read in one request, the change is checked here before anything
is written, and the write is an If-Match PUT: a colleague's change in between makes the server
refuse it, and the run reports a conflict instead of overwriting their work.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from ..care.task_states import REASONED, TERMINAL, check_requester_status, check_transition
from ..errors import Conflict, IllegalTransition, UnresolvedReference
from ..mapping import PlannedEntry
from ..mapping.transforms import iso
from .base import RunState, Workflow, update_entry

# what a referral's ServiceRequest becomes when its fulfilment Task ends
REQUEST_STATUS_AFTER = {
    "completed": "completed",
    "rejected": "revoked",
    "cancelled": "revoked",
    "failed": "revoked",
}


def found_task(state: RunState) -> dict[str, Any]:
    """The Task that ``$.task`` names, from what the run read."""
    reference = state.payload["task"]
    if "?" not in reference:
        return state.resource(reference)
    tasks = [r for key, r in state.found.items() if key.startswith("Task/")]
    if len(tasks) != 1:
        raise UnresolvedReference(f"$.task matches {len(tasks)} Tasks; it must match exactly one")
    return tasks[0]


def task_query(reference: str) -> str:
    """One search for the Task and its focus (a literal reference becomes ``_id``)."""
    rtype, _, rest = reference.partition("?")
    if rest:
        return f"{rtype}?{rest}&_include=Task:focus"
    task_id = reference.split("/", 1)[1]
    return f"Task?{urlencode({'_id': task_id, '_include': 'Task:focus'})}"


class TaskTransition(Workflow):
    name = "task"
    description = "Move a task along its state machine (accept, start, complete, ...) or reassign it"
    updates_types = ("Task", "ServiceRequest")

    def reads(self, payload: dict[str, Any]) -> list[str]:
        return [task_query(payload["task"])]

    def actor(self, payload: dict[str, Any]) -> str | None:
        value = payload.get("actor") or payload.get("owner")
        return str(value) if value else None

    def patient(self, payload: dict[str, Any]) -> str | None:
        return None  # filled from the Task itself in updates()

    def updates(self, state: RunState, created: dict[str, PlannedEntry]) -> list[PlannedEntry]:
        payload = state.payload
        task = dict(found_task(state))
        current = str(task.get("status"))
        target = payload.get("to")
        current_owner = (task.get("owner") or {}).get("reference")
        if payload.get("claim") and current_owner not in (None, payload.get("owner")):
            raise Conflict("the Task is already claimed by someone else")
        if target:
            check_transition(current, target)
            check_requester_status(task, target)  # a sent referral's status is the partner's
        elif current in TERMINAL and (payload.get("owner") or payload.get("business_status")):
            raise IllegalTransition(f"the Task is {current}; a finished Task cannot be reassigned")
        stamp = iso(state.now)
        actor = self.actor(payload)
        # Task.note is append-only: each note says who wrote it and when (R4 Annotation)
        signed: dict[str, Any] = {"authorReference": {"reference": actor}} if actor else {}
        if target:
            task["status"] = target
            period = dict(task.get("executionPeriod") or {})
            if target == "in-progress":
                period.setdefault("start", stamp)
            if target in TERMINAL:
                period.setdefault("start", stamp)
                period["end"] = stamp
            if period:
                task["executionPeriod"] = period
        if target:
            task.pop(
                "statusReason", None
            )  # it explained the status the Task leaves (SDOHCC Task.statusReason)
        if payload.get("reason") and task.get("status") in REASONED:
            task["statusReason"] = {"text": payload["reason"]}
        elif payload.get("reason"):
            task["note"] = [*task.get("note", []), {"text": payload["reason"], "time": stamp, **signed}]
        if payload.get("business_status"):
            task["businessStatus"] = _concept(payload["business_status"])
        if payload.get("owner"):
            task["owner"] = {"reference": payload["owner"]}
        if payload.get("note"):
            task["note"] = [*task.get("note", []), {"text": payload["note"], "time": stamp, **signed}]
        if target == "completed" and self._focus_request(state, task) is not None:
            # SDOHCC 3.0.0 Task.output: a completed referral says what was done (closed loop)
            outcome = payload.get("outcome") or {}
            activity = resulting_activity(
                outcome, state.found[task["focus"]["reference"]], self.mappings.codes
            )
            task["output"] = [*task.get("output", []), activity]
            if outcome.get("note"):
                task["note"] = [*task.get("note", []), {"text": outcome["note"], "time": stamp, **signed}]
        task["lastModified"] = stamp
        entries = [update_entry(task, "task")]
        request = self._focus_request(state, task)
        if target and request is not None and target in REQUEST_STATUS_AFTER:
            changed = dict(request)
            changed["status"] = REQUEST_STATUS_AFTER[target]
            entries.append(update_entry(changed, "service_request"))
        for_ref = (task.get("for") or {}).get("reference")
        if isinstance(for_ref, str) and for_ref.startswith("Patient/"):
            state.patient = for_ref
        return entries

    def _focus_request(self, state: RunState, task: dict[str, Any]) -> dict[str, Any] | None:
        """The ServiceRequest a fulfilment Task fulfils (a follow-up about a referral does not end it)."""
        codes = [c.get("code") for c in (task.get("code") or {}).get("coding") or [] if isinstance(c, dict)]
        if "fulfill" not in codes:
            return None
        focus = (task.get("focus") or {}).get("reference")
        if not isinstance(focus, str) or not focus.startswith("ServiceRequest/"):
            return None
        request = state.found.get(focus)
        if request is None or request.get("status") in ("completed", "revoked", "entered-in-error"):
            return None
        return request


def resulting_activity(
    outcome: dict[str, Any], request: dict[str, Any], codes: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """A ``resulting-activity`` output: the Procedure or Encounter named, else the activity's code, else
    the note, else the referral's own code (the requested service was done)."""
    output: dict[str, Any] = {"type": {"coding": [dict(codes["task-output-types"]["resulting-activity"])]}}
    if outcome.get("reference"):
        output["valueReference"] = {"reference": outcome["reference"]}
    elif outcome.get("code"):
        code = outcome["code"]
        found = codes.get("services", {}).get(code) if isinstance(code, str) else None
        output["valueCodeableConcept"] = _concept(found or code)
    elif outcome.get("note"):
        output["valueCodeableConcept"] = {"text": outcome["note"]}
    else:
        output["valueCodeableConcept"] = request.get("code") or {"text": "Referral fulfilled"}
    return output


def _concept(value: Any) -> dict[str, Any]:
    if isinstance(value, dict) and value.get("code"):
        coding = {k: value[k] for k in ("system", "code", "display") if value.get(k)}
        return {"coding": [coding], "text": value.get("display") or value["code"]}
    if isinstance(value, dict):
        return {"text": str(value.get("text"))}
    return {"text": str(value)}
