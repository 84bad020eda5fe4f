"""prior-auth: ask a payer for a prior authorization, and record the payer's answer.

``action: request`` (the default) writes the Claim (use ``preauthorization``) and a Task (code
``approve``) whose focus is the Claim, as the mapping says.

``action: record-decision`` reads the Task (with its Claim) and the payer's ClaimResponse in one
batch, checks that the response answers that Claim, and updates the Task with If-Match:
``businessStatus`` carries the decision (fhircare's code plus the payer's X12 306 code),
``output`` points at the ClaimResponse (and carries the authorization number), and a final decision
ends the Task (approved, partial, modified, not required, denied -> completed; cancelled ->
cancelled; error -> failed). A pending decision leaves the Task open. Requests create the Task
``ready`` (the payer's review is a given), so each decision is one legal R4 Task transition.

A decision given by phone or fax comes as ``manual`` instead of ``claim_response``: the mapping's
``claim_response`` entry writes that ClaimResponse (its shape in ``mappings/prior-auth.yaml``) and the
Task's update points at it, in the same transaction as the run's Provenance.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from ..care.payer_decision import DECISION_SYSTEM_NAME, TASK_STATUS, decision_of
from ..care.task_states import TERMINAL
from ..errors import IllegalTransition, Issue, PayloadError
from ..mapping import PlannedEntry
from ..mapping.transforms import iso
from .base import RunState, Workflow, update_entry
from .task_transition import found_task, task_query

PARTICIPANT_TYPE = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
DECISION_OUTPUT = {"text": "Payer decision"}
AUTH_NUMBER_OUTPUT = {"text": "Authorization number"}


def _refused(message: str, path: str) -> PayloadError:
    return PayloadError(message, [Issue("error", "business-rule", message, (path,))])


def _reference(value: Any) -> str | None:
    found = value.get("reference") if isinstance(value, dict) else None
    return found if isinstance(found, str) else None


class PriorAuth(Workflow):
    name = "prior-auth"
    description = "Request a prior authorization (Claim + Task to the payer), or record the payer's decision"
    updates_types = ("Task",)

    @staticmethod
    def _recording(payload: dict[str, Any]) -> bool:
        return payload.get("action") == "record-decision"

    def check(self, payload: dict[str, Any], now: datetime | None = None) -> list[Issue]:
        if self._recording(payload):
            if payload.get("manual") and payload.get("claim_response"):
                message = (
                    "give either the payer's ClaimResponse or a decision taken by hand (manual), not both"
                )
                return [Issue("error", "business-rule", message, ("$.claim_response",))]
            return _manual_issues(payload.get("manual"))
        if isinstance(payload.get("service"), str) or payload.get("category"):
            return []
        # the category defaults from the service's table key; a service given as a code needs its own
        message = "a service given as a code needs a category (X12 1365 service type; Da Vinci PAS Claim.item.category)"
        return [Issue("error", "required", message, ("$.category",))]

    def reads(self, payload: dict[str, Any]) -> list[str]:
        if not self._recording(payload):
            return []
        if payload.get("manual"):
            return [task_query(payload["task"])]
        return [task_query(payload["task"]), str(payload["claim_response"])]

    def actor(self, payload: dict[str, Any]) -> str | None:
        if self._recording(payload):
            return str(payload["actor"]) if payload.get("actor") else None
        return super().actor(payload)

    def patient(self, payload: dict[str, Any]) -> str | None:
        return None if self._recording(payload) else super().patient(payload)

    def _provenance(
        self,
        state: RunState,
        created: list[PlannedEntry],
        updated: list[PlannedEntry],
        new_uuid: Callable[[], str],
    ) -> PlannedEntry:
        """A decision taken by hand names, besides the coordinator who took it (the author), the payer's
        person who gave it and how, as an informant acting for the payer."""
        entry = super()._provenance(state, created, updated, new_uuid)
        response = next((e.resource for e in created if e.name == "claim_response"), None)
        if response is not None:
            informant: dict[str, Any] = {
                "type": {"coding": [{"system": PARTICIPANT_TYPE, "code": "informant"}]},
                "who": {"display": str(response.get("disposition"))},
            }
            if response.get("insurer"):
                informant["onBehalfOf"] = response["insurer"]
            entry.resource["agent"].append(informant)
        return entry

    def updates(self, state: RunState, created: dict[str, PlannedEntry]) -> list[PlannedEntry]:
        if not self._recording(state.payload):
            return []
        task = dict(found_task(state))
        claim = _reference(task.get("focus"))
        if claim is None or not claim.startswith("Claim/"):
            raise _refused("the Task is not a prior-authorization Task: its focus is not a Claim", "$.task")
        if "claim_response" in created:  # taken down by hand: the response this run writes
            response_ref = created["claim_response"].full_url
            response = created["claim_response"].resource
        else:
            response_ref = str(state.payload["claim_response"])
            response = state.resource(response_ref)
        if response.get("use") not in (None, "preauthorization"):
            raise _refused(
                f"{response_ref} is a {response.get('use')} response, not a preauthorization",
                "$.claim_response",
            )
        answered = _reference(response.get("request"))
        if answered is not None and answered != claim:
            raise _refused(f"{response_ref} answers {answered}, not the Task's {claim}", "$.claim_response")
        if answered is None and _reference(response.get("patient")) != _reference(task.get("for")):
            raise _refused(f"{response_ref} names no Claim and is about another patient", "$.claim_response")
        current = str(task.get("status"))
        if current in TERMINAL:
            raise IllegalTransition(
                f"the prior-authorization Task is already {current}; its decision is recorded"
            )

        decision = decision_of(response)
        stamp = iso(state.now)
        task["businessStatus"] = decision.business_status(self.namespaces.system(DECISION_SYSTEM_NAME))
        outputs = [
            o
            for o in task.get("output") or []
            if not (isinstance(o, dict) and o.get("type") in (DECISION_OUTPUT, AUTH_NUMBER_OUTPUT))
        ]
        outputs.append({"type": DECISION_OUTPUT, "valueReference": {"reference": response_ref}})
        if decision.auth_number:
            outputs.append({"type": AUTH_NUMBER_OUTPUT, "valueString": decision.auth_number})
        task["output"] = outputs
        if decision.final:
            task["status"] = TASK_STATUS[decision.decision]
            period = dict(task.get("executionPeriod") or {})
            period.setdefault("start", stamp)
            period["end"] = stamp
            task["executionPeriod"] = period
        notes = list(task.get("note") or [])
        if decision.disposition:
            notes.append({"text": f"Payer: {decision.disposition}", "time": stamp})
        if state.payload.get("note"):
            notes.append({"text": state.payload["note"], "time": stamp})
        if notes:
            task["note"] = notes
        task["lastModified"] = stamp
        state.patient = _reference(task.get("for"))
        return [update_entry(task, "task")]


def _manual_issues(manual: Any) -> list[Issue]:
    """What a decision taken by hand must hold beyond its schema: a number when it grants something,
    and a period that does not end before it starts."""
    if not isinstance(manual, dict):
        return []
    issues = []
    if manual.get("decision") in ("approved", "partial") and not manual.get("number"):
        message = "an approved or partially approved decision needs the authorization number the payer gave"
        issues.append(Issue("error", "required", message, ("$.manual.number",)))
    period = manual.get("period") or {}
    start, end = period.get("start"), period.get("end")
    if isinstance(start, str) and isinstance(end, str) and end < start:
        message = f"the authorization period ends ({end}) before it starts ({start})"
        issues.append(Issue("error", "business-rule", message, ("$.manual.period.end",)))
    return issues
