"""Declarative mappings: a payload becomes FHIR resources, as described by ``mappings/*.yaml``. No HTTP."""

from .engine import BuildContext, PlannedEntry
from .entries import build_entries
from .loader import MappingSet, load_mappings

__all__ = ["BuildContext", "MappingSet", "PlannedEntry", "build_entries", "load_mappings"]
