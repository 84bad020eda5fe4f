"""Checks before anything is sent: payloads against their input schema, resources against local profiles."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
import referencing.exceptions

try:  # a compiled validator (Rust) answers "valid?" in microseconds; jsonschema stays the authority
    import jsonschema_rs
except ImportError:  # pragma: no cover - a platform without its wheel: jsonschema alone
    jsonschema_rs = None  # type: ignore[assignment]
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from ..caching import IdentityCache
from ..errors import ConfigurationError, Issue, PayloadError
from ..fhir import models

REFERENCE_SHAPE = re.compile(r"^[A-Z][A-Za-z]+(/[A-Za-z0-9\-.]{1,64}$|\?)")


def _refuse_constant(name: str) -> Any:
    raise PayloadError(f"the payload is not JSON: {name} is not a JSON number (RFC 8259)")


def parse_payload(text: str | bytes) -> dict[str, Any]:
    """Parse a workflow payload as strict JSON: an object, no NaN or Infinity."""
    try:
        payload = json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise PayloadError(
            f"the payload is not JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from None
    except (UnicodeDecodeError, RecursionError):
        raise PayloadError("the payload is not JSON (bad encoding or nested too deeply)") from None
    if not isinstance(payload, dict):
        raise PayloadError("the payload must be a JSON object")
    return payload


def json_path(parts: Any) -> str:
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts)


@lru_cache(maxsize=4)
def _registry(workflows_dir: Path) -> Registry:
    registry: Registry = Registry()
    for path in sorted(workflows_dir.glob("_*.schema.json")):
        document = json.loads(path.read_text(encoding="utf-8"))
        registry = registry.with_resource(document["$id"], Resource.from_contents(document))
    return registry


@lru_cache(maxsize=64)
def load_schema(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigurationError(f"schema file {path} is missing")
    schema: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return schema


@lru_cache(maxsize=256)
def _schema_path(profiles_dir: Path, folder: str, name: str) -> Path:
    return profiles_dir / folder / f"{name}.schema.json"


@lru_cache(maxsize=16)
def _workflows_registry(profiles_dir: Path) -> Registry:
    return _registry(profiles_dir / "workflows")


def workflow_schema(profiles_dir: Path, workflow: str, schema_file: Path | None = None) -> dict[str, Any]:
    """A workflow's input schema: ``schema_file`` (a workflow added by a mapping folder), else the built-in."""
    return load_schema(schema_file or _schema_path(profiles_dir, "workflows", workflow))


def _rule(error: jsonschema.ValidationError) -> str:
    return f"{error.validator}: {error.message}"


#: one validator per (schema, registry): both come from the caches above and live as long as the process
_validators: IdentityCache[_Validator] = IdentityCache(limit=256)

# What the compiled validator accepts and jsonschema refuses, as it appears in a document's JSON:
# characters Python's ``\s`` (jsonschema's patterns) counts as white space and Rust's does not, and a
# date in year 0000 (``date.fromisoformat`` refuses it). A document holding one is checked by
# jsonschema alone.
_DIALECT_GAPS = ("\\u001", "\\u0085", '"0000-')


class _Validator:
    """jsonschema's validator for a schema, behind a compiled one that only ever says "valid".

    Only a document the compiled validator (``jsonschema-rs``) accepts skips jsonschema; anything it
    rejects, or cannot take (lone surrogates, huge numbers), is checked by jsonschema, whose issues are
    what a caller sees. Where the two disagree the stricter side is the compiled one's pattern dialect
    (``\\d``, ``$``), so the fast path never lets through what jsonschema would refuse; documents with
    the few characters where Python's ``\\s`` is wider are never given to it
    (``tests/unit/test_payload_fast_path.py`` holds the two to the same answers).
    """

    def __init__(self, schema: dict[str, Any], registry: Registry | None = None) -> None:
        """``registry``: where jsonschema resolves the references of a schema that could not be inlined."""
        self.slow = jsonschema.Draft202012Validator(
            schema,
            format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
            **({"registry": registry} if registry is not None else {}),
        )
        self.fast = _compiled(schema)

    def iter_errors(self, document: Any) -> Any:
        if self.fast is not None and self._fast_valid(document):
            return iter(())
        return self.slow.iter_errors(document)

    def _fast_valid(self, document: Any) -> bool:
        try:
            text = json.dumps(document, allow_nan=False)
        except (TypeError, ValueError):
            return False
        if any(gap in text for gap in _DIALECT_GAPS):
            return False
        loaded = json.loads(text)
        if loaded != document:  # not plain JSON (a tuple, a non-string key): jsonschema decides
            return False
        try:
            return bool(self.fast.is_valid(loaded))
        except Exception:
            return False


def _compiled(schema: dict[str, Any]) -> Any:
    """The compiled validator of a self-contained schema (every ``$ref`` inlined), else None."""
    if jsonschema_rs is None or '"$ref"' in json.dumps(schema):
        return None
    try:
        return jsonschema_rs.Draft202012Validator(schema, validate_formats=True)
    except Exception:
        return None


def compiled_validator(schema: dict[str, Any], registry: Registry) -> _Validator:
    """One validator per (schema, registry), made once."""
    return _validators.get((schema, registry), lambda: _new_validator(schema, registry))


def _new_validator(schema: dict[str, Any], registry: Registry) -> _Validator:
    full = inlined(schema, registry)
    if full is schema:  # not inlinable: jsonschema resolves its references through the registry
        return _Validator(schema, registry)
    return _Validator(full)


class _NotInlinable(Exception):
    """A schema whose references cannot all be inlined (a cycle, an anchor, an unknown URI)."""


def _rooted(schema: dict[str, Any], registry: Registry) -> tuple[Registry, str]:
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
    registry, own_id = _rooted(schema, registry)
    try:
        result = _inline(schema, registry.resolver(own_id), ())
    except (_NotInlinable, referencing.exceptions.Unresolvable):
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
        raise _NotInlinable
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
        raise _NotInlinable
    inlined_target = _inline(contents, resolved.resolver, (*seen, target))
    if not out:
        return inlined_target
    out["allOf"] = [*out.get("allOf", []), inlined_target]
    return out


def schema_issues(
    document: Any, schema: dict[str, Any], registry: Registry, prefix: tuple[Any, ...] = ()
) -> list[Issue]:
    validator = compiled_validator(schema, registry)
    issues = []
    for error in sorted(validator.iter_errors(document), key=lambda e: [str(p) for p in e.absolute_path]):
        # a failing oneOf/anyOf says little; its best-matching branch says what is wrong
        best = jsonschema.exceptions.best_match([error]) if error.context else error
        issues.append(Issue("error", "invalid", _rule(best), (json_path((*prefix, *best.absolute_path)),)))
    return issues


def validate_payload(
    profiles_dir: Path, workflow: str, payload: Any, schema_file: Path | None = None
) -> None:
    """Raise PayloadError listing every failing JSON path with its rule."""
    schema = workflow_schema(profiles_dir, workflow, schema_file)
    issues = schema_issues(payload, schema, _workflows_registry(profiles_dir))
    if issues:
        raise PayloadError(
            f"the {workflow} payload is invalid ({len(issues)} problem{'s' * (len(issues) > 1)})", issues
        )


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
        raise _NotInlinable  # a recursive schema: no finite plan
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
    rooted, own_id = _rooted(schema, registry)
    try:
        return _reference_plan(schema, rooted.resolver(own_id))
    except (_NotInlinable, referencing.exceptions.Unresolvable):
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

    rooted, own_id = _rooted(schema, registry)
    try:
        walk(schema, payload, (), rooted.resolver(own_id))
    except referencing.exceptions.Unresolvable as exc:
        raise ConfigurationError(f"schema {own_id}: a reference does not resolve ({exc})") from None
    return found


def payload_references(
    profiles_dir: Path, workflow: str, payload: Any, schema_file: Path | None = None
) -> list[tuple[tuple[Any, ...], str]]:
    return reference_paths(
        workflow_schema(profiles_dir, workflow, schema_file), payload, _workflows_registry(profiles_dir)
    )


def profile_issues(
    profiles_dir: Path,
    profile: str | None,
    resource: dict[str, Any],
    label: str,
    structure: bool = True,
) -> list[Issue]:
    """Structure (FHIR R4 model) and local-profile problems of one resource about to be written.

    ``structure=False`` skips the FHIR R4 model check (``Settings.structure_checks``): for
    resources built from validated mappings it repeats what the golden and conformance tests
    check, and it costs more than the rest of the run's own work; the local profile still applies.
    """
    issues = models.structure_issues(resource, at=label) if structure else []
    if profile:
        schema = load_schema(_schema_path(profiles_dir, "fhir", profile))
        registry = _workflows_registry(profiles_dir)
        for issue in schema_issues(resource, schema, registry):
            where = issue.expression[0].replace("$", label, 1) if issue.expression else label
            issues.append(Issue("error", "invariant", f"profile {profile}: {issue.diagnostics}", (where,)))
    return issues
