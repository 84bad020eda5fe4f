"""Running a workflow for a caller, the same way from the API and from the pages: write scopes first,
then the run with the access guard of a patient session (compartment.PatientGuard)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import current_app

from ..errors import Conflict, FhircareError, IllegalTransition, ScopeDenied, UnresolvedReference
from ..fhir import FhirClient
from ..settings import Settings
from ..workflows import WorkflowResult, get_workflow
from .compartment import OUTSIDE, PatientGuard, literal
from .fhir_access import access, patient_in_context, require_write_scopes


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
    workflow = get_workflow(name, client, settings, guard)
    require_write_scopes(
        creates if creates is not None else workflow.created_types(), workflow.updated_types()
    )
    holder = current_app.extensions.get("fhircare.exchange")
    try:
        if name == "task" and not dry_run and holder is not None:
            guard_owner_transition(workflow, payload, client, holder.partner_organizations())
        result = workflow.run(payload, dry_run=dry_run)
    except UnresolvedReference:
        if holder is not None:
            holder.count_run(name, "refused")
        if guard is None:
            raise
        raise ScopeDenied(OUTSIDE) from None
    except FhircareError as exc:
        if holder is not None:
            holder.count_run(name, run_outcome(exc))
        raise
    if holder is not None:
        holder.count_run(name, "dry_run" if dry_run else "repeated" if result.repeated else "written")
    if guard is not None and result.repeated:
        # an earlier run with this request id answered: its references must be this patient's too
        named = {
            ref for value in result.written if (ref := literal(value)) and not ref.startswith("Provenance/")
        }
        guard.check_references(named)
    return result


def run_outcome(exc: FhircareError) -> str:
    """The fixed outcome word a failed run is counted under (exchange_runtime.RUN_OUTCOMES)."""
    if isinstance(exc, Conflict | IllegalTransition):
        return "conflict"
    return "refused" if exc.status < 500 else "failed"


def guard_owner_transition(
    workflow: Any, payload: Mapping[str, Any], client: FhirClient, partners: set[str]
) -> None:
    """The light pattern: a caller acting for a partner's Organization (``on_behalf_of``, one of
    ``partners``) that owns the Task may change only status, statusReason and output (the performer's
    guard); nothing is written otherwise."""
    acting = payload.get("on_behalf_of")
    task = payload.get("task")
    if acting not in partners or not isinstance(task, str):
        return
    before = client.read_reference(task)
    if (before.get("owner") or {}).get("reference") != acting:
        return
    from ..exchange.performer import guard_owner_change

    planned = workflow.run(payload, dry_run=True).details.get("bundle") or {}
    for entry in planned.get("entry") or []:
        if (entry.get("request") or {}).get("url") == task:
            guard_owner_change(before, _literal_references(entry["resource"]))


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
