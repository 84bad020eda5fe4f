"""Load mapping and code-table YAML files, with a user's overlay folder replacing built-in files by name."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from ..errors import ConfigurationError
from .language import mapping_errors


@dataclass(frozen=True)
class MappingSet:
    """All workflow mappings and code tables in effect (built-ins overlaid by a user's folder)."""

    mappings: dict[str, dict[str, Any]]
    codes: dict[str, dict[str, Any]]
    sources: dict[str, Path] = field(default_factory=dict)
    #: input schemas of workflows a user's folder adds (``<name>.schema.json`` beside ``<name>.yaml``)
    schemas: dict[str, Path] = field(default_factory=dict)

    def mapping(self, workflow: str) -> dict[str, Any]:
        try:
            return self.mappings[workflow]
        except KeyError:
            raise ConfigurationError(f"no mapping file for workflow {workflow!r}") from None

    def declared_profiles(self, resource_type: str) -> list[tuple[str, ...]]:
        """The distinct ``meta.profile`` lists the entries creating ``resource_type`` declare, in any
        mapping in effect (a list computed per payload counts as one of its own)."""
        found: list[tuple[str, ...]] = []
        for mapping in self.mappings.values():
            for entry in mapping["entries"]:
                resource = entry["resource"]
                if resource.get("resourceType") != resource_type:
                    continue
                profiles = (resource.get("meta") or {}).get("profile")
                declared = (
                    tuple(profiles)
                    if isinstance(profiles, list) and all(isinstance(p, str) for p in profiles)
                    else ("(computed)", mapping["workflow"], entry["name"])
                )
                if declared not in found:
                    found.append(declared)
        return found


def _yaml_files(folder: Path | None) -> dict[str, Path]:
    if folder is None or not folder.is_dir():
        return {}
    return {p.stem: p for p in sorted(folder.glob("*.yaml"))}


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"{path}: not valid YAML ({exc})") from None


def _check(document: Any, schema: dict[str, Any], path: Path) -> None:
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        where = "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first.absolute_path)
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ConfigurationError(f"{path}: {where}: {first.message}{more}")


def load_mappings(builtin_dir: Path, overlay_dir: Path | None = None) -> MappingSet:
    """Read every mapping and code table; an invalid file fails here with its file, path and reason."""
    return _load_cached(builtin_dir.resolve(), overlay_dir.resolve() if overlay_dir else None)


@lru_cache(maxsize=8)
def _load_cached(builtin_dir: Path, overlay_dir: Path | None) -> MappingSet:
    schema_path = builtin_dir / "mapping.schema.json"
    mapping_schema = json.loads(schema_path.read_text(encoding="utf-8"))
    code_schema = mapping_schema["$defs"]["codeTable"]
    mapping_files = {**_yaml_files(builtin_dir), **_yaml_files(overlay_dir)}
    code_files = {
        **_yaml_files(builtin_dir / "codes"),
        **_yaml_files(overlay_dir / "codes" if overlay_dir else None),
    }
    mappings: dict[str, dict[str, Any]] = {}
    sources: dict[str, Path] = {}
    for name, path in mapping_files.items():
        document = _read_yaml(path)
        _check(document, mapping_schema, path)
        problems = mapping_errors(document)
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise ConfigurationError(f"{path}: {problems[0]}{more}")
        if document["workflow"] != name:
            raise ConfigurationError(
                f"{path}: $.workflow is {document['workflow']!r} but the file is named {name!r}"
            )
        mappings[name] = document
        sources[name] = path
    codes: dict[str, dict[str, Any]] = {}
    for name, path in code_files.items():
        document = _read_yaml(path)
        _check(document, {**code_schema, "$defs": mapping_schema["$defs"]}, path)
        codes[name] = document["codes"]
        sources[f"codes/{name}"] = path
    schemas = {
        path.name.removesuffix(".schema.json"): path
        for path in sorted(overlay_dir.glob("*.schema.json") if overlay_dir else [])
        if path.name.removesuffix(".schema.json") in mappings
    }
    return MappingSet(mappings, codes, sources, schemas)
