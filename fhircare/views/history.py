"""What fhircare did for a patient, read back from the Provenance records every workflow writes."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ..fhir import FhirClient
from ..namespaces import Namespaces
from .labels import reference_of
from .rows import Rows

COLUMNS = ("recorded", "workflow", "who", "targets", "request_id")


@dataclass(frozen=True)
class HistoryRow:
    recorded: str
    workflow: str
    who: str
    targets: list[str]
    request_id: str | None
    provenance: str
    stored: str = ""  # the server's meta.lastUpdated: orders runs within the same second

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _workflow_of(provenance: dict[str, Any], namespaces: Namespaces) -> str:
    activity = provenance.get("activity") or {}
    for coding in activity.get("coding") or []:
        if namespaces.is_system(coding.get("system"), "workflow"):
            return str(coding.get("code"))
    return str(activity.get("text") or "")


def _request_id_of(provenance: dict[str, Any], namespaces: Namespaces) -> str | None:
    for tag in (provenance.get("meta") or {}).get("tag") or []:
        if namespaces.is_system(tag.get("system"), "request-id") and isinstance(tag.get("code"), str):
            return str(tag["code"]).rsplit("/", 1)[0]
    return None


def patient_history(
    client: FhirClient, patient: str, page_size: int | None = None, namespaces: Namespaces | None = None
) -> Rows[HistoryRow]:
    """fhircare's Provenance about a patient (entity = the patient), oldest first; paged lazily, in
    pages as large as the server allows unless ``page_size`` says (a :class:`Rows`: ``truncated``
    says whether paging stopped before the end).

    Runs are recognised by the workflow code system under ``namespaces`` (the deployment's base) or
    the ``urn:fhircare:workflow`` system of earlier releases."""
    namespaces = namespaces or Namespaces()
    rows = []
    search = client.search("Provenance", [("entity", patient), *client.paging.params(page_size)])
    for provenance in search:
        workflow = _workflow_of(provenance, namespaces)
        if not workflow:
            continue  # a Provenance written by someone else
        agents = provenance.get("agent") or []
        who = reference_of(agents[0].get("who")) if agents else None
        rows.append(
            HistoryRow(
                recorded=str(provenance.get("recorded", "")),
                workflow=workflow,
                who=who or str(((agents[0].get("who") or {}).get("display")) if agents else ""),
                targets=[r for r in (reference_of(t) for t in provenance.get("target") or []) if r],
                request_id=_request_id_of(provenance, namespaces),
                provenance=f"Provenance/{provenance.get('id')}",
                stored=str((provenance.get("meta") or {}).get("lastUpdated", "")),
            )
        )
    return Rows(sorted(rows, key=lambda r: (r.recorded, r.stored, r.provenance)), search.truncated)
