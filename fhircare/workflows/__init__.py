"""Coordinator verbs. ``fhircare.workflows.run("refer", payload, client)`` validates, maps and writes one transaction."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from ..errors import UnknownWorkflow
from ..fhir import FhirClient
from ..mapping import MappingSet, load_mappings
from ..settings import Settings
from .base import AccessGuard, Workflow, WorkflowResult
from .catalogue import WORKFLOWS, catalogue


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


def our_organization(settings: Settings) -> str | None:
    """Our Organization: the partners file's ``self.organization`` (FHIRCARE_PARTNERS), else
    FHIRCARE_ORGANIZATION; None when neither names one."""
    if settings.partners_file is not None:
        path = Path(settings.partners_file)
        try:
            stamp = path.stat().st_mtime_ns
        except OSError:
            return settings.organization  # fhircare.exchange refuses the missing file where it is needed
        return _file_organization(str(path), stamp) or settings.organization
    return settings.organization


@functools.lru_cache(maxsize=8)
def _file_organization(path: str, stamp: int) -> str | None:
    """``self.organization`` of a partners file (read once per version of the file; a file that
    does not parse names none here: fhircare.exchange reports it, naming file, path and reason)."""
    try:
        document = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None
    own = document.get("self") if isinstance(document, dict) else None
    value = own.get("organization") if isinstance(own, dict) else None
    return value if isinstance(value, str) and value.startswith("Organization/") else None


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
