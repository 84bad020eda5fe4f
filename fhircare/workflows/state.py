"""What one run knows and what it answers: the run's state, its result, and the access guard type."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..errors import (
    UnresolvedReference,
)
from ..mapping import PlannedEntry

PROVENANCE_ENTRY = "provenance"
VERIFY_MODES = ("auto", "transaction", "batch", "off")

#: Decides whether the caller may touch what a run names; raises a FhircareError to refuse. Called per
#: attempt once the reads and conditional references are resolved (with no entries yet, so no later
#: refusal can tell what was read), then with every planned transaction entry (what it creates or
#: changes, the references it carries), before anything is written. Arguments: the resources read
#: (``Type/id`` -> resource) and the entries. The sidecar keeps a patient session inside its patient.
AccessGuard = Callable[[Mapping[str, dict[str, Any]], Sequence[PlannedEntry]], None]


@dataclass(frozen=True)
class WorkflowResult:
    """What a run wrote: the references the server assigned, Provenance included."""

    workflow: str
    request_id: str
    written: list[str]
    created: list[str]
    updated: list[str]
    repeated: bool
    requests: int
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "workflow": self.workflow,
            "request_id": self.request_id,
            "written": self.written,
            "created": self.created,
            "updated": self.updated,
            "repeated": self.repeated,
            "requests": self.requests,
            **({"details": self.details} if self.details else {}),
        }


@dataclass
class RunState:
    """What one attempt knows: the payload (references resolved) and the resources read for it."""

    payload: dict[str, Any]
    request_id: str
    now: datetime
    found: dict[str, dict[str, Any]] = field(default_factory=dict)
    patient: str | None = None  # set by a workflow that learns the patient from what it read
    plain: bool = False  # the transaction was sent as plain creates after looking the request id up
    dry_run: bool = False  # plan and show the transaction, write nothing
    fingerprint: str = ""  # of the workflow and payload (repeats.payload_fingerprint), on the Provenance
    #: entry name -> ``Type/id`` an earlier attempt with this request id created (its conditional
    #: create will match it), for the entries an update appends: not appended twice
    matched: dict[str, str] = field(default_factory=dict)

    def resource(self, reference: str) -> dict[str, Any]:
        try:
            return self.found[reference]
        except KeyError:
            raise UnresolvedReference(f"{reference} was not found on the server") from None
