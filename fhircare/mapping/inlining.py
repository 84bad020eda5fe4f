"""Schemas with every ``$ref`` replaced by what it names, so validating resolves no reference."""

from __future__ import annotations

from typing import Any

import referencing.exceptions
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012


class NotInlinable(Exception):
    """A schema whose references cannot all be inlined (a cycle, an anchor, an unknown URI)."""


def rooted(schema: dict[str, Any], registry: Registry) -> tuple[Registry, str]:
    """The registry with the schema itself in it, and its URI: its own ``#/$defs/...`` references
    then resolve against it (a schema without ``$id`` gets a name of its own)."""
    own_id = str(schema.get("$id") or f"urn:fhircare:anonymous-schema:{id(schema)}")
    if own_id not in registry:
        registry = registry.with_resource(
            own_id, Resource.from_contents(schema, default_specification=DRAFT202012)
        )
    return registry, own_id


def inlined(schema: dict[str, Any], registry: Registry) -> dict[str, Any]:
    """The schema with every ``$ref`` replaced by what it names, so that validating resolves no
    reference (most of a payload check's time went to ``referencing`` lookups). A ``$ref`` with
    sibling keywords becomes ``allOf`` beside them, which validates, and reports, the same. A schema
    with a cycle, an anchor or a dynamic reference is returned as it is."""
    registry, own_id = rooted(schema, registry)
    try:
        result = _inline(schema, registry.resolver(own_id), ())
    except (NotInlinable, referencing.exceptions.Unresolvable):
        return schema
    return result if isinstance(result, dict) else schema


_SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_SCHEMA_LISTS = ("allOf", "anyOf", "oneOf", "prefixItems")
_SCHEMA_VALUES = (
    "items",
    "additionalProperties",
    "not",
    "if",
    "then",
    "else",
    "contains",
    "propertyNames",
    "unevaluatedItems",
    "unevaluatedProperties",
)


def _inline(node: Any, resolver: Any, seen: tuple[str, ...]) -> Any:
    """One schema node with its references (and those of its subschemas) replaced."""
    if not isinstance(node, dict):
        return node
    if any(key in node for key in ("$anchor", "$dynamicRef", "$dynamicAnchor", "$recursiveRef")):
        raise NotInlinable
    if "$id" in node and seen:  # a nested resource: its own base for the references inside it
        resolver = resolver.in_subresource(Resource.from_contents(node))
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "$ref":
            continue
        if key in _SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {name: _inline(child, resolver, seen) for name, child in value.items()}
        elif key in _SCHEMA_LISTS and isinstance(value, list):
            out[key] = [_inline(child, resolver, seen) for child in value]
        elif key in _SCHEMA_VALUES:
            out[key] = _inline(value, resolver, seen)
        else:
            out[key] = value
    ref = node.get("$ref")
    if not isinstance(ref, str):
        return out
    resolved = resolver.lookup(ref)
    contents = resolved.contents
    target = f"{contents.get('$id', '')}|{ref}" if isinstance(contents, dict) else ref
    if target in seen or len(seen) > 32:
        raise NotInlinable
    inlined_target = _inline(contents, resolved.resolver, (*seen, target))
    if not out:
        return inlined_target
    out["allOf"] = [*out.get("allOf", []), inlined_target]
    return out
