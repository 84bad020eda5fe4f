"""Care-gap rules as data: ``rules/gaps.yaml`` (and a ``FHIRCARE_RULES`` folder that overrides or adds
rules by id), checked against its schema and each rule's FHIRPath compiled when loaded."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fhirpathpy
import jsonschema
import yaml

from ..errors import ConfigurationError
from ..settings import Settings

RULES_FILE = "gaps.yaml"


@dataclass(frozen=True)
class Rule:
    id: str
    title: str
    severity: str
    next_workflow: str
    resource: str
    where: str
    params: dict[str, Any]

    def heading(self) -> str:
        return self.title.format(**self.params) if self.params else self.title


def _read_rules(path: Path, schema: dict[str, Any]) -> list[dict[str, Any]]:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"{path}: not valid YAML ({exc})") from None
    errors = sorted(
        jsonschema.Draft202012Validator(schema).iter_errors(document), key=lambda e: list(e.absolute_path)
    )
    if errors:
        where = "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in errors[0].absolute_path)
        raise ConfigurationError(f"{path}: {where}: {errors[0].message}")
    rules: list[dict[str, Any]] = document["rules"]
    return rules


def load_rules(settings: Settings) -> list[Rule]:
    """Built-in rules, overridden by id (or extended) by a file of the same name in the overlay folder."""
    schema = json.loads((settings.builtin_rules_dir / "rules.schema.json").read_text(encoding="utf-8"))
    merged = {r["id"]: r for r in _read_rules(settings.builtin_rules_dir / RULES_FILE, schema)}
    if settings.rules_dir is not None and (settings.rules_dir / RULES_FILE).is_file():
        for rule in _read_rules(settings.rules_dir / RULES_FILE, schema):
            merged[rule["id"]] = rule
    rules = []
    for raw in merged.values():
        if raw.get("disabled"):
            continue
        rules.append(
            Rule(
                raw["id"],
                raw["title"],
                raw["severity"],
                raw["next_workflow"],
                raw["resource"],
                raw["where"],
                dict(raw.get("params") or {}),
            )
        )
        _check_expression(rules[-1])
    return rules


def _check_expression(rule: Rule) -> None:
    try:
        fhirpathpy.compile(rule.where)
    except Exception as exc:  # fhirpathpy raises plain exceptions on syntax errors
        raise ConfigurationError(f"rule {rule.id}: the FHIRPath in 'where' does not parse ({exc})") from None
