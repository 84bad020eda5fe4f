"""What a workflow module may say beyond its mapping: which resources it reads, how it changes them,
rules across fields, who acts and for which patient. The defaults read the mapping alone."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from ..errors import (
    ConfigurationError,
    Issue,
)
from ..fhir import FhirClient
from ..mapping import BuildContext, MappingSet, PlannedEntry, build_entries
from ..namespaces import Namespaces
from ..settings import Settings
from .derive import DERIVATIONS
from .guards import GUARDS
from .state import VERIFY_MODES, AccessGuard, RunState


class WorkflowHooks:
    """The hooks of a workflow, with defaults that follow its mapping."""

    name: ClassVar[str]
    description: ClassVar[str]
    #: re-read and rebuild when an If-Match update loses a race (merges like "add an activity")
    merge_on_conflict: ClassVar[bool] = False
    #: resource types the ``updates`` hook may change (the sidecar checks scopes for them)
    updates_types: ClassVar[tuple[str, ...]] = ()
    #: payload fields naming existing resources this workflow reads (and updates), when present
    reads_fields: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        client: FhirClient,
        mappings: MappingSet,
        profiles_dir: Path,
        verify_references: str = "auto",
        access: AccessGuard | None = None,
        namespaces: Namespaces | None = None,
        structure_checks: bool = True,
        organization: str | None = None,
    ) -> None:
        self.client = client
        #: our Organization (``Organization/<id>``): the Provenance agent's ``onBehalfOf`` when the acting
        #: Practitioner has no role and the payload names no ``on_behalf_of`` (US Core provenance-1)
        self.organization = organization
        #: fhircare's own systems (request ids, workflow codes, ...) under the deployment's base
        self.namespaces = namespaces or Namespaces()
        #: check every entry against the FHIR R4 model too (off by default through Settings: what
        #: fhircare builds from a checked mapping is checked by the golden and conformance tests)
        self.structure_checks = structure_checks
        self.mappings = mappings
        self.profiles_dir = profiles_dir
        #: the input schema of a workflow a mapping folder adds (built-in ones live in profiles/workflows)
        self.schema_file = mappings.schemas.get(self.name)
        spec = mappings.mapping(self.name)
        unknown = [g for g in spec.get("guards") or [] if g not in GUARDS]
        unknown += [d for d in spec.get("derive") or [] if d not in DERIVATIONS]
        if unknown:
            source = mappings.sources.get(self.name, self.name)
            known = ", ".join(sorted([*GUARDS, *DERIVATIONS]))
            raise ConfigurationError(f"{source}: unknown guard or derivation {unknown[0]!r} (known: {known})")
        #: how literal references in a payload are checked to exist: "transaction" (sent as conditional
        #: references ``Type?_id=``, which the server resolves inside the transaction: no extra
        #: request), "batch" (searched in the read batch before writing), "off", or "auto" (the
        #: default: "transaction" where the server was seen to resolve conditional references, else
        #: "batch"; learned once per server by a probe that writes nothing there)
        if verify_references not in VERIFY_MODES:
            raise ConfigurationError(f"verify_references must be one of {', '.join(VERIFY_MODES)}")
        self.verify_references = verify_references
        self.access = access

    def configure(self, settings: Settings) -> None:
        """Take what this workflow needs from the deployment's settings (most need nothing)."""

    def created_types(self) -> set[str]:
        """Resource types a run may create: the mapping's entries and the Provenance."""
        mapping = self.mappings.mapping(self.name)
        return {str(e["resource"]["resourceType"]) for e in mapping["entries"]} | {"Provenance"}

    def updated_types(self) -> set[str]:
        """Resource types a run may update: the class's and the mapping's ``updates`` (the sidecar
        checks the caller may update each)."""
        mapping = self.mappings.mapping(self.name)
        return set(self.updates_types) | {str(u["type"]) for u in mapping.get("updates") or []}

    def written_types(self) -> set[str]:
        """Every resource type a run may write: created ones and updated ones."""
        return self.created_types() | self.updated_types()

    def merges_on_conflict(self) -> bool:
        """Re-read and rebuild when an If-Match update loses a race (``on_conflict: merge``)."""
        return self.merge_on_conflict or self.mappings.mapping(self.name).get("on_conflict") == "merge"

    def check(self, payload: dict[str, Any], now: datetime | None = None) -> list[Issue]:
        """Rules across fields that a JSON Schema cannot say: the mapping's named ``guards``. ``now``
        is the run's clock (a booking "in the past" is past for the run)."""
        names = self.mappings.mapping(self.name).get("guards") or []
        return [issue for name in names for issue in GUARDS[name](payload)]

    def reads(self, payload: dict[str, Any]) -> list[str]:
        """Existing resources this run changes: ``Type/id`` reads or ``Type?...`` searches."""
        fields = (*self.reads_fields, *self.mappings.mapping(self.name).get("reads", ()))
        return [str(payload[name]) for name in dict.fromkeys(fields) if payload.get(name)]

    def updates(self, state: RunState, created: dict[str, PlannedEntry]) -> list[PlannedEntry]:
        """Changed copies of resources in ``state.found``, as If-Match PUT entries."""
        return []

    def entries(self, state: RunState, ctx: BuildContext) -> list[PlannedEntry]:
        """Resources to create; by default what the mapping says."""
        return build_entries(self.mappings.mapping(self.name), ctx)

    def actor(self, payload: dict[str, Any]) -> str | None:
        field_name = self.mappings.mapping(self.name).get("actor")
        value = payload.get(field_name) if field_name else None
        return str(value) if value else None

    def patient(self, payload: dict[str, Any]) -> str | None:
        field_name = self.mappings.mapping(self.name).get("patient", "patient")
        value = payload.get(field_name)
        return str(value) if isinstance(value, str) else None
