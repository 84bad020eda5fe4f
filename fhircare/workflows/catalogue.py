"""The workflow catalogue: name -> class, discovered from the mapping folders.

Built-in workflows with rules that data cannot say (a state machine, a 7-day rule) have a class
here; any other mapping in effect (built in, or added by a ``FHIRCARE_MAPPINGS`` folder with its
``<name>.yaml`` and ``<name>.schema.json``) is a workflow of its own, described by its YAML alone."""

from __future__ import annotations

from typing import Any

from ..mapping import MappingSet
from .assess import Assess
from .base import Workflow
from .care_plan import CarePlanWorkflow
from .prior_auth import PriorAuth
from .refer import Refer
from .schedule import Schedule
from .simple import CoverageCheck, Educate, Enroll, FollowUp, Transport
from .task_transition import TaskTransition
from .transition import Transition

WORKFLOWS: dict[str, type[Workflow]] = {
    cls.name: cls
    for cls in (
        Assess,
        CarePlanWorkflow,
        CoverageCheck,
        Educate,
        Enroll,
        FollowUp,
        PriorAuth,
        Refer,
        Schedule,
        TaskTransition,
        Transition,
        Transport,
    )
}


def from_mapping(name: str, mapping: dict[str, Any]) -> type[Workflow]:
    """A workflow class for a mapping with no Python of its own: creates what its entries say, reads
    what ``reads`` names (for its references), checks nothing more than its schema and profiles."""
    attributes = {
        "name": name,
        "description": str(mapping.get("description") or mapping["title"]),
        "reads_fields": tuple(str(field) for field in mapping.get("reads") or ()),
    }
    return type(f"MappedWorkflow_{name.replace('-', '_')}", (Workflow,), attributes)


def catalogue(mappings: MappingSet) -> dict[str, type[Workflow]]:
    """Every workflow in effect: the built-in classes, and one per other mapping in ``mappings``."""
    found = dict(WORKFLOWS)
    for name, mapping in mappings.mappings.items():
        if name not in found:
            found[name] = from_mapping(name, mapping)
    return found
