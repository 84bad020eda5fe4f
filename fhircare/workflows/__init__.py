"""Coordinator verbs. ``fhircare.workflows.run("refer", payload, client)`` validates, maps and writes one transaction."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from ..errors import UnknownWorkflow
from ..fhir import FhirClient
from ..mapping import MappingSet, load_mappings
from ..settings import Settings
from .base import AccessGuard, Workflow, WorkflowResult
from .catalogue import WORKFLOWS, catalogue
from .partners_file import our_organization


def mappings_for(settings: Settings) -> MappingSet:
    return load_mappings(settings.builtin_mappings_dir, settings.mappings_dir)


def get_workflow(
    name: str, client: FhirClient, settings: Settings | None = None, access: AccessGuard | None = None
) -> Workflow:
    """The named workflow over ``client``; ``access`` (optional) may refuse what a run would touch."""
    settings = settings or Settings()
    mappings = mappings_for(settings)
    known = catalogue(mappings)
    cls = known.get(name)
    if cls is None:
        raise UnknownWorkflow(f"unknown workflow {name!r}; known: {', '.join(sorted(known))}")
    workflow = cls(
        client,
        mappings,
        settings.profiles_dir,
        settings.verify_references,
        access,
        settings.namespaces(),
        structure_checks=settings.structure_checks,
        organization=our_organization(settings),
    )
    workflow.configure(settings)
    return workflow


def run(
    workflow: str,
    payload: Mapping[str, Any],
    client: FhirClient,
    settings: Settings | None = None,
    now: datetime | None = None,
    access: AccessGuard | None = None,
    dry_run: bool = False,
) -> WorkflowResult:
    """Run one workflow: validate the payload, map it, check the output and write one transaction.

    ``dry_run`` writes nothing: ``result.details["bundle"]`` is the transaction that would be sent.

    ``access`` is called before anything is written with what the run read and plans to write, and
    refuses by raising (see :data:`fhircare.workflows.base.AccessGuard`)."""
    return get_workflow(workflow, client, settings, access).run(payload, now=now, dry_run=dry_run)


def describe(settings: Settings | None = None) -> list[dict[str, str]]:
    """Name and description of every workflow in effect (a mapping folder may add some)."""
    known = catalogue(mappings_for(settings or Settings()))
    return [{"workflow": name, "description": cls.description} for name, cls in sorted(known.items())]


__all__ = [
    "WORKFLOWS",
    "AccessGuard",
    "Workflow",
    "WorkflowResult",
    "catalogue",
    "describe",
    "get_workflow",
    "mappings_for",
    "our_organization",
    "run",
]
