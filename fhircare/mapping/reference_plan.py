"""Where a workflow's input schema declares FHIR references, and the payload strings that are some."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import referencing.exceptions
from referencing import Registry

from ..caching import IdentityCache
from ..errors import ConfigurationError
from .inlining import NotInlinable, rooted

REFERENCE_SHAPE = re.compile(r"^[A-Z][A-Za-z]+(/[A-Za-z0-9\-.]{1,64}$|\?)")


@dataclass
class _ReferencePlan:
    """Where a schema declares FHIR references, worked out once per schema: a payload walk then
    follows only the branches that can hold one (resolving no ``$ref`` per run)."""

    is_reference: bool = False
    properties: dict[str, _ReferencePlan] = field(default_factory=dict)
    items: _ReferencePlan | None = None
    branches: list[_ReferencePlan] = field(default_factory=list)


#: per (schema, registry): its reference plan, None where it declares no reference, False where it has
#: no finite plan (a recursive schema: walked lazily)
_reference_plans: IdentityCache[_ReferencePlan | bool | None] = IdentityCache(limit=256)


def _reference_plan(node: Any, resolver: Any, depth: int = 0) -> _ReferencePlan | None:
    """The plan of one schema node, or None where no reference can lie beneath it."""
    if not isinstance(node, dict):
        return None
    if depth > 64:
        raise NotInlinable  # a recursive schema: no finite plan
    ref = node.get("$ref")
    if isinstance(ref, str):
        name = ref.rsplit("/", 1)[-1]
        if name == "ref" or name.endswith("_ref"):
            # a field that is "a reference or free text" (oneOf) names a resource only in ref shape
            return _ReferencePlan(is_reference=True)
        resolved = resolver.lookup(ref)
        return _reference_plan(resolved.contents, resolved.resolver, depth + 1)
    plan = _ReferencePlan()
    for key, child in (node.get("properties") or {}).items():
        found = _reference_plan(child, resolver, depth + 1)
        if found is not None:
            plan.properties[key] = found
    if isinstance(node.get("items"), dict):
        plan.items = _reference_plan(node["items"], resolver, depth + 1)
    for branch in (*(node.get("oneOf") or ()), *(node.get("anyOf") or ()), *(node.get("allOf") or ())):
        found = _reference_plan(branch, resolver, depth + 1)
        if found is not None:
            plan.branches.append(found)
    return plan if plan.properties or plan.items or plan.branches else None


def reference_paths(
    schema: dict[str, Any], payload: Any, registry: Registry
) -> list[tuple[tuple[Any, ...], str]]:
    """(JSON path parts, value) of every payload string the schema declares a FHIR reference.

    A plan made once per schema is followed; a schema that has none (a recursive one) is walked
    along the payload, resolving its references as it goes."""
    plan = _reference_plans.get((schema, registry), lambda: _new_reference_plan(schema, registry))
    found: list[tuple[tuple[Any, ...], str]] = []

    def walk(plan: _ReferencePlan, value: Any, at: tuple[Any, ...]) -> None:
        if plan.is_reference:
            if isinstance(value, str) and REFERENCE_SHAPE.match(value):
                found.append((at, value))
            return
        if isinstance(value, dict):
            for key, child in plan.properties.items():
                if key in value:
                    walk(child, value[key], (*at, key))
        if isinstance(value, list) and plan.items is not None:
            for i, item in enumerate(value):
                walk(plan.items, item, (*at, i))
        for branch in plan.branches:
            walk(branch, value, at)

    if plan is False:
        found = _walk_lazily(schema, payload, registry)
    elif isinstance(plan, _ReferencePlan):
        walk(plan, payload, ())
    unique = set(found)
    return sorted(unique, key=lambda pv: [str(p) for p in pv[0]])


def _new_reference_plan(schema: dict[str, Any], registry: Registry) -> _ReferencePlan | bool | None:
    with_schema, own_id = rooted(schema, registry)
    try:
        return _reference_plan(schema, with_schema.resolver(own_id))
    except (NotInlinable, referencing.exceptions.Unresolvable):
        return False  # no finite plan: walk lazily


def _walk_lazily(
    schema: dict[str, Any], payload: Any, registry: Registry
) -> list[tuple[tuple[Any, ...], str]]:
    """The payload walked along the schema, each ``$ref`` resolved where the payload reaches it."""
    found: list[tuple[tuple[Any, ...], str]] = []

    def walk(node: dict[str, Any], value: Any, at: tuple[Any, ...], resolver: Any) -> None:
        ref = node.get("$ref")
        if isinstance(ref, str):
            name = ref.rsplit("/", 1)[-1]
            if name == "ref" or name.endswith("_ref"):
                if isinstance(value, str) and REFERENCE_SHAPE.match(value):
                    found.append((at, value))
                return
            resolved = resolver.lookup(ref)
            walk(resolved.contents, value, at, resolved.resolver)
            return
        if isinstance(value, dict):
            for key, child in (node.get("properties") or {}).items():
                if key in value:
                    walk(child, value[key], (*at, key), resolver)
        if isinstance(value, list) and isinstance(node.get("items"), dict):
            for i, item in enumerate(value):
                walk(node["items"], item, (*at, i), resolver)
        for branch in (*(node.get("oneOf") or ()), *(node.get("anyOf") or ()), *(node.get("allOf") or ())):
            walk(branch, value, at, resolver)

    with_schema, own_id = rooted(schema, registry)
    try:
        walk(schema, payload, (), with_schema.resolver(own_id))
    except referencing.exceptions.Unresolvable as exc:
        raise ConfigurationError(f"schema {own_id}: a reference does not resolve ({exc})") from None
    return found
