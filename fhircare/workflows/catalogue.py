"""The workflow catalogue: name -> class, discovered from the mapping folders.

Built-in workflows with rules that data cannot say (a state machine, a 7-day rule) have a class
here; any other mapping in effect (built in, or added by a ``FHIRCARE_MAPPINGS`` folder with its
``<name>.yaml`` and ``<name>.schema.json``) is a workflow of its own, described by its YAML alone."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from functools import lru_cache
from typing import Any

from ..caching import IdentityCache
from ..mapping import MappingSet, load_mappings
from .base import Workflow
from .prior_auth import PriorAuth
from .schedule import Schedule
from .task_transition import TaskTransition
from .undo_complete import UndoCompletion

#: built-in workflows whose rules need Python (state machines, the payer's answer, plan revisions)
GUARDED: dict[str, type[Workflow]] = {
    cls.name: cls for cls in (PriorAuth, Schedule, TaskTransition, UndoCompletion)
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


#: catalogues made, per mapping set (load_mappings caches those): a run no longer builds classes
_made: IdentityCache[dict[str, type[Workflow]]] = IdentityCache(limit=16)


def catalogue(mappings: MappingSet) -> dict[str, type[Workflow]]:
    """Every workflow in effect: the built-in classes, and one per other mapping in ``mappings``
    (made once per mapping set; callers get their own copy of the dict)."""
    return dict(_made.get((mappings,), lambda: _new_catalogue(mappings)))


def _new_catalogue(mappings: MappingSet) -> dict[str, type[Workflow]]:
    found = dict(GUARDED)
    for name, mapping in mappings.mappings.items():
        if name not in found:
            found[name] = from_mapping(name, mapping)
    return found


class _BuiltinCatalogue(Mapping[str, type[Workflow]]):
    """The built-in workflows (the package's own mapping folder), read on first use, not at import."""

    def _all(self) -> dict[str, type[Workflow]]:
        return _builtin()

    def __getitem__(self, name: str) -> type[Workflow]:
        return self._all()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())


@lru_cache(maxsize=1)
def _builtin() -> dict[str, type[Workflow]]:
    from ..settings import Settings

    return catalogue(load_mappings(Settings().builtin_mappings_dir))


#: every built-in workflow by name (a ``FHIRCARE_MAPPINGS`` folder may add more: see ``catalogue``)
WORKFLOWS: Mapping[str, type[Workflow]] = _BuiltinCatalogue()
