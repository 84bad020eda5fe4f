"""Checks before anything is sent: payloads against their input schema, resources against local profiles."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
from referencing import Registry, Resource

from ..errors import ConfigurationError, Issue, PayloadError
from ..fhir import models
from .inlining import inlined
from .reference_plan import REFERENCE_SHAPE, reference_paths
from .validator import compiled_validator, jsonschema_rs

__all__ = [
    "REFERENCE_SHAPE",
    "compiled_validator",
    "inlined",
    "json_path",
    "jsonschema_rs",
    "load_schema",
    "parse_payload",
    "payload_references",
    "profile_issues",
    "reference_paths",
    "schema_issues",
    "validate_payload",
    "workflow_schema",
]


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
