"""Running a workflow for a caller, the same way from the API and from the pages: write scopes first,
then the run with the access guard of a patient session (compartment.PatientGuard)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import current_app

from ..errors import ScopeDenied, UnresolvedReference
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
    try:
        result = workflow.run(payload, dry_run=dry_run)
    except UnresolvedReference:
        if guard is None:
            raise
        raise ScopeDenied(OUTSIDE) from None
    if guard is not None and result.repeated:
        # an earlier run with this request id answered: its references must be this patient's too
        named = {
            ref for value in result.written if (ref := literal(value)) and not ref.startswith("Provenance/")
        }
        guard.check_references(named)
    return result
