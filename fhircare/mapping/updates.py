"""How a mapping changes resources a run read: ``updates`` in ``mappings/<workflow>.yaml``.

A tiny patch vocabulary, applied to a copy of the resource read (the write is an If-Match PUT):

```yaml
updates:
  - name: care_plan            # the entry's name
    target: care_plan          # payload field naming a resource the run read (skipped when absent)
    type: CarePlan             # its resource type (the sidecar checks the caller may update it)
    profile: caseload-care-plan   # optional local profile, as for entries
    skip_if: {status: [completed, revoked]}   # leave it alone when it already is so
    patch:
      - {append_unique: activity, value: {reference: {$entry: referral}}}
      - {append_unique: addresses, values: {$entries: need}}
      - {set: status, value: completed}
      - {merge: period, value: {end: {$: discharge_date}}}   # keys it lacks only
      - {merge: period, value: {$: period}, prefer: value}   # the value's keys win
```

Values are templates of the mapping language, rendered with the run's payload and the references
of the entries it creates. Nothing here touches the network.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigurationError
from .engine import BuildContext, render

OPERATIONS = ("append_unique", "set", "merge")


@dataclass(frozen=True)
class Update:
    """One planned change: the entry name, the changed resource and its profile."""

    name: str
    resource: dict[str, Any]
    profile: str | None


def plan_updates(
    mapping: dict[str, Any], ctx: BuildContext, found: dict[str, dict[str, Any]]
) -> list[Update]:
    """The changed copies the mapping's ``updates`` make of what the run read."""
    changed = []
    for spec in mapping.get("updates") or []:
        reference = ctx.payload.get(spec["target"])
        if not reference:
            continue
        if reference not in found:
            raise ConfigurationError(f"{mapping['workflow']}.{spec['name']}: {spec['target']} was not read")
        resource = copy.deepcopy(found[reference])
        if _skipped(resource, spec.get("skip_if") or {}):
            continue
        for i, operation in enumerate(spec["patch"]):
            apply(resource, operation, ctx, f"{mapping['workflow']}.{spec['name']}.patch[{i}]")
        changed.append(Update(spec["name"], resource, spec.get("profile")))
    return changed


def apply(resource: dict[str, Any], operation: dict[str, Any], ctx: BuildContext, where: str) -> None:
    """Apply one patch operation in place."""
    (kind,) = [k for k in operation if k in OPERATIONS]
    path = str(operation[kind])
    if kind == "append_unique":
        items = (
            render(operation["values"], ctx, where)
            if "values" in operation
            else [render(operation["value"], ctx, where)]
        )
        current = list(resource.get(path) or [])
        current += [item for item in items or [] if item is not None and item not in current]
        if current:
            resource[path] = current
    elif kind == "set":
        value = render(operation["value"], ctx, where)
        if value is not None:
            resource[path] = value
    else:  # merge: the keys the element lacks (prefer: value -> the value's keys win)
        value = render(operation["value"], ctx, where) or {}
        existing = resource.get(path) or {}
        merged = {**existing, **value} if operation.get("prefer") == "value" else {**value, **existing}
        if merged:
            resource[path] = merged


def _skipped(resource: dict[str, Any], skip_if: dict[str, list[Any]]) -> bool:
    return any(resource.get(element) in values for element, values in skip_if.items())


def add_references(resource: dict[str, Any], element: str, references: list[str]) -> dict[str, Any]:
    """A copy of ``resource`` whose list ``element`` also holds ``references`` (no duplicates)."""
    changed = dict(resource)
    current = list(changed.get(element) or [])
    present = {item.get("reference") for item in current if isinstance(item, dict)}
    current += [{"reference": ref} for ref in references if ref not in present]
    if current:
        changed[element] = current
    return changed
