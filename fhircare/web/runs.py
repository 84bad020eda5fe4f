"""Running a workflow for a caller, the same way from the API and from the pages: write scopes first,
then the run with the access guard of a patient session (compartment.PatientGuard).

A partner's caller (callers.py) runs only ``task`` on a Task its Organization owns, always on behalf of
that Organization, moving it only to the performer's statuses and changing only status, statusReason and
output (exchange.performer.guard_owner_change on the planned Task); anything else is refused before any
write (403 for what is not theirs, 422 naming the fields for the rest)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from flask import current_app

from ..errors import (
    Conflict,
    FhircareError,
    IllegalTransition,
    Issue,
    PayloadError,
    ScopeDenied,
    UnresolvedReference,
)
from ..settings import Settings
from ..workflows import AccessGuard, WorkflowResult, get_workflow
from .actors import held_actor, signed_in_payload
from .callers import PartnerCaller, partner_caller
from .compartment import OUTSIDE, PatientGuard, literal
from .fhir_access import access, patient_in_context, require_write_scopes

#: the statuses a performer sets (Gravity SDOH CC: the owner's); cancelling is the requester's here
PERFORMER_STATUSES = ("accepted", "rejected", "in-progress", "on-hold", "failed", "completed")
#: what the task workflow itself writes along with a status (not the caller's choice)
DERIVED_FIELDS = frozenset({"executionPeriod"})
NOT_THEIRS = "this Task is not one your organization owns"

if TYPE_CHECKING:
    from ..fhir import FhirClient
    from ..mapping import PlannedEntry


def run_workflow(
    name: str, payload: Mapping[str, Any], creates: set[str] | None = None, dry_run: bool = False
) -> WorkflowResult:
    """Check write scopes ('c' on ``creates``, by default every type the workflow may create; 'u' on
    what it may update), then run it. In a patient session, the run is refused with one 403 when it
    would read, write or name anything of another patient, and a reference that names nothing gets
    the same 403 (no answer may tell whether another patient's resource exists)."""
    settings: Settings = current_app.extensions["fhircare.settings"]
    client = access().client_for_request()
    patient = patient_in_context()
    guard = PatientGuard(client, patient) if patient is not None else None
    holder = current_app.extensions.get("fhircare.exchange")
    acting = partner_caller()
    owner_guard = None
    if acting is not None:
        try:
            payload = partner_payload(name, payload, acting)
        except FhircareError:
            if holder is not None:
                holder.count_run(name, "refused")
            raise
        outcome = payload.get("outcome")
        echo = outcome.get("note") if isinstance(outcome, dict) and payload.get("to") == "completed" else None
        owner_guard = OwnerGuard(client, acting.partner.organization, str(payload["task"]), True, echo)
    elif (
        name == "task"
        and holder is not None
        and payload.get("on_behalf_of") in holder.partner_organizations()
    ):
        owner_guard = OwnerGuard(client, str(payload["on_behalf_of"]), str(payload.get("task")), strict=False)
    workflow = get_workflow(name, client, settings, both(guard, owner_guard))
    payload = signed_in_payload(workflow, payload)  # a SMART user is the actor (actors.py)
    require_write_scopes(
        creates if creates is not None else workflow.created_types(), workflow.updated_types()
    )
    try:
        result = workflow.run(payload, dry_run=dry_run)
    except UnresolvedReference:
        if holder is not None:
            holder.count_run(name, "refused")
        if guard is None and acting is None:
            raise
        raise ScopeDenied(OUTSIDE if acting is None else NOT_THEIRS) from None
    except FhircareError as exc:
        if holder is not None:
            holder.count_run(name, run_outcome(exc))
        if (acting is not None or guard is not None) and _reused_id(exc):
            # a request id another's run used: the same 403 as any other run not theirs (a 409 would
            # tell a partner's staff or a patient that the id exists)
            raise ScopeDenied(OUTSIDE if acting is None else NOT_THEIRS) from None
        raise
    if holder is not None:
        holder.count_run(name, "dry_run" if dry_run else "repeated" if result.repeated else "written")
    if acting is not None and result.repeated:  # an earlier run with this request id: on this Task only
        if payload.get("task") not in {literal(str(v)) for v in result.written}:
            raise ScopeDenied(NOT_THEIRS)
    if guard is not None and result.repeated:
        # an earlier run with this request id answered: its references must be this patient's too
        named = {
            ref for value in result.written if (ref := literal(value)) and not ref.startswith("Provenance/")
        }
        guard.check_references(named)
    return result


def _reused_id(exc: FhircareError) -> bool:
    return isinstance(exc, Conflict) and any("$.request_id" in i.expression for i in exc.issues)


def run_outcome(exc: FhircareError) -> str:
    """The fixed outcome word a failed run is counted under (exchange_runtime.RUN_OUTCOMES)."""
    if isinstance(exc, Conflict | IllegalTransition):
        return "conflict"
    return "refused" if exc.status < 500 else "failed"


def partner_payload(name: str, payload: Mapping[str, Any], acting: PartnerCaller) -> dict[str, Any]:
    """A partner's caller: only the task workflow, on a literal Task, on behalf of its own Organization
    (none given: theirs; another: 403), naming no actor but themselves, to a performer's status."""
    org = acting.partner.organization
    task = payload.get("task")
    if name != "task" or not isinstance(task, str) or not task.startswith("Task/") or "?" in task:
        raise ScopeDenied("a partner's staff may only move the referrals their organization owns")
    if payload.get("on_behalf_of") not in (None, org):
        raise ScopeDenied(f"a partner's staff act on behalf of {org} only")
    # the actor (Provenance.agent.who): a SMART user is themselves; a backend caller names one of the
    # partner's listed Practitioners, or no one
    staff = (
        {acting.user} if acting.user else {c for c in acting.partner.callers if c.startswith("Practitioner/")}
    )
    actor = held_actor(payload, staff, acting.user)
    target = payload.get("to")
    if target is not None and target not in PERFORMER_STATUSES:
        raise PayloadError(
            f"the performer may not set a referral to {target!r}",
            [Issue("error", "business-rule", ", ".join(PERFORMER_STATUSES), ("$.to",))],
        )
    return {**payload, "on_behalf_of": org, **({"actor": actor} if actor else {})}


class OwnerGuard:
    """The light pattern, inside the run (an access guard: it sees the Task as the run read it, the
    version its If-Match names, and what the run plans): when ``organization`` (a partner's) owns the
    Task, the planned Task may differ from it only in status, statusReason and output
    (exchange.performer.guard_owner_change), and an output it adds may name only this patient's outcome
    or what the run itself writes (guard_owner_outputs: what the run did not read is read here, in one
    batch, only when such an output is added). ``strict`` (a partner's own caller): a Task that
    Organization does not own, or none, is one 403. ``outcome_note``: a completion's outcome text, which
    the workflow writes as the output and also appends as a note: that one note is the output's echo."""

    def __init__(
        self,
        client: FhirClient,
        organization: str,
        task: str,
        strict: bool,
        outcome_note: str | None = None,
    ) -> None:
        self.client, self.organization, self.task, self.strict = client, organization, task, strict
        self.outcome_note = outcome_note

    def __call__(self, found: Mapping[str, dict[str, Any]], planned: Sequence[PlannedEntry]) -> None:
        from ..exchange.performer import guard_owner_change

        tasks = [r for key, r in found.items() if key.startswith("Task/")]
        before = found.get(self.task) if "?" not in self.task else (tasks[0] if len(tasks) == 1 else None)
        if before is None or (before.get("owner") or {}).get("reference") != self.organization:
            if self.strict:
                raise ScopeDenied(NOT_THEIRS)
            return
        for entry in planned:
            resource = entry.resource
            if resource.get("resourceType") == "Task" and resource.get("id") == before.get("id"):
                after = _literal_references(resource)
                guard_owner_change(before, self._without_echo(before, after), DERIVED_FIELDS)
                self._check_outputs(found, planned, before, after)

    def _check_outputs(
        self,
        found: Mapping[str, dict[str, Any]],
        planned: Sequence[PlannedEntry],
        before: dict[str, Any],
        after: dict[str, Any],
    ) -> None:
        from ..exchange.performer import added_output_references, guard_owner_outputs, outcome_reads

        added = added_output_references(before, after)
        if not added:
            return
        written = {e.full_url for e in planned if e.method == "POST"}
        wanted = outcome_reads(added, written)
        resolved = {ref: found[ref] for ref in wanted if ref in found}
        resolved.update(self.client.read_found([ref for ref in wanted if ref not in found]))
        guard_owner_outputs(before, added, written, resolved)

    def _without_echo(self, before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
        notes, earlier = after.get("note") or [], before.get("note") or []
        if (
            self.outcome_note
            and len(notes) == len(earlier) + 1
            and notes[:-1] == earlier
            and notes[-1].get("text") == self.outcome_note
        ):
            after = {k: v for k, v in after.items() if k != "note"}
            if "note" in before:
                after["note"] = before["note"]
        return after


def both(*guards: AccessGuard | None) -> AccessGuard | None:
    """One access guard running every given one in turn (None when none is given)."""
    present = [g for g in guards if g is not None]
    if len(present) < 2:
        return present[0] if present else None

    def check(found: Mapping[str, dict[str, Any]], planned: Sequence[PlannedEntry]) -> None:
        for one in present:
            one(found, planned)

    return check


def _literal_references(node: Any) -> Any:
    """``Type?_id=X`` (how a run that verifies references names what it read) back to ``Type/X``."""
    if isinstance(node, dict):
        out = {k: _literal_references(v) for k, v in node.items()}
        ref = out.get("reference")
        if isinstance(ref, str) and "?_id=" in ref and "&" not in ref:
            out["reference"] = ref.replace("?_id=", "/", 1)
        return out
    if isinstance(node, list):
        return [_literal_references(v) for v in node]
    return node
