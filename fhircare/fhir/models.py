"""The one module that imports FHIR model classes (fhir.resources R4B, close to R4 4.0.1).

Moving to R5 means changing this module only. Everything else handles resources as plain dicts
and asks this module to check or type them.
"""

from __future__ import annotations

from typing import Any

from fhir.resources import R4B as _r4b
from pydantic import ValidationError as _PydanticValidationError

from ..errors import Issue

FHIR_VERSION = "4.0.1"


def model_class(resource_type: str) -> Any:
    """The model class of a resource type, or None when the type is unknown."""
    try:
        return _r4b.get_fhir_model_class(resource_type)
    except (KeyError, ValueError, AttributeError):
        return None


def parse(resource: dict[str, Any]) -> Any:
    """A typed model of a resource dict; raises ValueError naming the bad fields."""
    cls = model_class(str(resource.get("resourceType", "")))
    if cls is None:
        raise ValueError(f"unknown resourceType {resource.get('resourceType')!r}")
    return cls.model_validate(resource)


def structure_issues(resource: dict[str, Any], at: str = "$") -> list[Issue]:
    """Structural problems of a resource (types, cardinality, unknown elements) as issues with JSON paths."""
    cls = model_class(str(resource.get("resourceType", "")))
    if cls is None:
        return [Issue("error", "structure", f"unknown resourceType {resource.get('resourceType')!r}", (at,))]
    try:
        cls.model_validate(resource)
    except _PydanticValidationError as exc:
        return [
            Issue(
                "error",
                "structure",
                str(err.get("msg", "invalid")),
                (at + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err.get("loc", ())),),
            )
            for err in exc.errors()
        ]
    return []


def known_resource_type(name: str) -> bool:
    return model_class(name) is not None
