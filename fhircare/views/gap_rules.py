"""Care-gap rules as data: ``rules/gaps.yaml`` (and a ``FHIRCARE_RULES`` folder that overrides or adds
rules by id), checked against its schema and each rule's FHIRPath compiled when loaded."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import fhirpathpy
import jsonschema
import yaml

from ..errors import ConfigurationError
from ..settings import Settings

RULES_FILE = "gaps.yaml"
#: lists a rule may read whatever the patient (``%<name>`` in its ``where``): name -> the search, with
#: ``{namespace}`` our namespace base. Fetched only when a loaded rule names it, as one more entry of
#: the first batch of searches (no extra request; one search when the lists came from a bulk export).
SHARED = {
    # the exchange's per-partner sync states (fhircare/exchange/cursor.py): polled-at, reachability
    "exchange_states": "Basic?identifier={namespace}/sid/exchange-state|&_count=1000",
}


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


def instant(moment: datetime) -> str:
    """An aware moment as a FHIR instant in UTC, to the second (``YYYY-MM-DDTHH:MM:SSZ``)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def business_days_before(moment: datetime, days: int) -> datetime:
    """The moment ``days`` business days (Monday to Friday; no holiday calendar) before ``moment``.

    A moment on a weekend counts from the start of that Saturday (no business time has passed since),
    so a referral sent on Thursday morning is not two business days old on Sunday.
    """
    if moment.weekday() >= 5:
        saturday = moment.date() - timedelta(days=moment.weekday() - 5)
        moment = datetime.combine(saturday, time(), tzinfo=moment.tzinfo)
    for _ in range(days):
        moment -= timedelta(days=1)
        while moment.weekday() >= 5:
            moment -= timedelta(days=1)
    return moment


def rule_env(rule: Rule, today: date, now: datetime) -> dict[str, Any]:
    """The variables one rule's FHIRPath sees: %today, %now (an instant, with its time of day), the
    rule's params, and the cutoffs its params ask for: %cutoff (today - days, a date),
    %cutoff_business (now - business_days, an instant) and %cutoff_hours (now - hours, an instant)."""
    env: dict[str, Any] = {"today": today.isoformat(), "now": instant(now), **rule.params}
    if "days" in rule.params:
        env["cutoff"] = (today - timedelta(days=int(rule.params["days"]))).isoformat()
    if "business_days" in rule.params:
        env["cutoff_business"] = instant(business_days_before(now, int(rule.params["business_days"])))
    if "hours" in rule.params:
        env["cutoff_hours"] = instant(now - timedelta(hours=float(rule.params["hours"])))
    return env


def shared_searches(rules: list[Rule], settings: Settings) -> dict[str, str]:
    """The ``SHARED`` lists the rules name: name -> search URL."""
    namespace = settings.namespaces().base.rstrip("/")
    return {
        name: search.format(namespace=namespace)
        for name, search in SHARED.items()
        if any(f"%{name}" in rule.where for rule in rules)
    }


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
