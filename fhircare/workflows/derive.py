"""Named derivations: values a mapping uses that the payload does not hold as such, computed from the
payload, what the run read and its clock. A mapping lists the ones it uses under ``derive:`` and
reads them as ``{$: derived.<name>}`` (or ``when: derived.<name>``)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from ..mapping.transforms import TRANSFORMS, parse_datetime
from .state import RunState

Derivation = Callable[[RunState, dict[str, dict[str, Any]]], Any]


def _old_appointment(state: RunState) -> dict[str, Any]:
    """The appointment a reschedule replaces (empty for any other action)."""
    if state.payload.get("action") != "reschedule":
        return {}
    return state.resource(str(state.payload["appointment"]))


def books(state: RunState, codes: dict[str, dict[str, Any]]) -> bool:
    """schedule: the action books an appointment (book, or the new one of a reschedule)."""
    return state.payload.get("action") in ("book", "reschedule")


def reminds(state: RunState, codes: dict[str, dict[str, Any]]) -> bool:
    """schedule: a booking whose reminder day (the day before) is still to come."""
    day = TRANSFORMS["add_days"](state.payload.get("start"), -1)
    return books(state, codes) and bool(day) and parse_datetime(day) > state.now


def _kept(element: str) -> Derivation:
    def keep(state: RunState, codes: dict[str, dict[str, Any]]) -> Any:
        return copy.deepcopy(_old_appointment(state).get(element)) or None

    keep.__doc__ = f"schedule: a reschedule keeps the old appointment's {element}."
    return keep


def new_plan(state: RunState, codes: dict[str, dict[str, Any]]) -> bool:
    """care-plan: no plan is named, so the run writes a new one."""
    return not state.payload.get("care_plan")


def activities(state: RunState, codes: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """care-plan: CarePlan.activity items from the payload's activities (references or details)."""
    return [activity_of(item, codes) for item in state.payload.get("activities") or []]


def requests(state: RunState, codes: dict[str, dict[str, Any]]) -> bool:
    """prior-auth: the run requests an authorization (it is not recording a payer's answer)."""
    return bool(state.payload.get("action", "request") != "record-decision")


# a decision taken by hand -> (X12 306 review action code, ClaimResponse.outcome)
MANUAL_DECISION = {
    "approved": ("A1", "complete"),
    "partial": ("A2", "partial"),
    "denied": ("A3", "complete"),
    "pended": ("A4", "queued"),
}
MANUAL_WORDS = {
    "approved": "Approved",
    "partial": "Partially approved",
    "denied": "Denied",
    "pended": "Pended",
}


def manual_decision(state: RunState, codes: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """prior-auth record-decision with ``manual``: what the hand-made ClaimResponse takes from the Task
    read (its Claim, patient, payer) and the decision's codes; empty for any other run."""
    manual = state.payload.get("manual")
    if state.payload.get("action") != "record-decision" or not isinstance(manual, dict):
        return {}
    task = next((r for key, r in state.found.items() if key.startswith("Task/")), {})
    claim_ref = (task.get("focus") or {}).get("reference")
    claim = state.found.get(str(claim_ref), {})
    x12, outcome = MANUAL_DECISION[manual["decision"]]
    said = f"{MANUAL_WORDS[manual['decision']]} by {manual['channel']}: {manual['said_by']} for the payer"
    return {
        "request": {"reference": claim_ref} if claim_ref else None,
        "patient": task.get("for") or claim.get("patient"),
        "insurer": claim.get("insurer") or task.get("owner"),
        "requestor": claim.get("provider") or task.get("requester"),
        "type": claim.get("type")
        or {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/claim-type", "code": "professional"}]
        },
        "x12": x12,
        "outcome": outcome,
        "said": said,
    }


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


DERIVATIONS: dict[str, Derivation] = {
    "books": books,
    "reminds": reminds,
    "old_participants": _kept("participant"),
    "old_description": _kept("description"),
    "old_service_type": _kept("serviceType"),
    "old_appointment_type": _kept("appointmentType"),
    "old_reason_reference": _kept("reasonReference"),
    "new_plan": new_plan,
    "activities": activities,
    "requests": requests,
    "manual": manual_decision,
}


def derived(names: list[str], state: RunState, codes: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The values of the named derivations for this run."""
    return {name: DERIVATIONS[name](state, codes) for name in names}
