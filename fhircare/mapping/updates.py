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

``append_unique`` adds an entry's ``urn:uuid`` unless the element already names the resource that
entry's conditional create will match (``matched``): an earlier attempt with the same request id
that stayed written (an undo that could not complete advises running it again) is not added twice.
The run finds those resources with :func:`entry_lookups` (searches in its read batch) and
:func:`matched_entries`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from ..errors import ConfigurationError
from ..fhir.transaction import replace_references
from ..namespaces import REQUEST_ID, Namespaces
from .engine import BuildContext, lookup, render
from .entries import request_token

OPERATIONS = ("append_unique", "set", "merge")


@dataclass(frozen=True)
class Update:
    """One planned change: the entry name, the changed resource and its profile."""

    name: str
    resource: dict[str, Any]
    profile: str | None


def plan_updates(
    mapping: dict[str, Any],
    ctx: BuildContext,
    found: dict[str, dict[str, Any]],
    matched: dict[str, str] | None = None,
) -> list[Update]:
    """The changed copies the mapping's ``updates`` make of what the run read (``matched``: an
    entry's ``urn:uuid`` -> the ``Type/id`` its conditional create will match, where one exists)."""
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
            apply(resource, operation, ctx, f"{mapping['workflow']}.{spec['name']}.patch[{i}]", matched)
        changed.append(Update(spec["name"], resource, spec.get("profile")))
    return changed


def apply(
    resource: dict[str, Any],
    operation: dict[str, Any],
    ctx: BuildContext,
    where: str,
    matched: dict[str, str] | None = None,
) -> None:
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
        for item in items or []:
            if (
                item is not None
                and item not in current
                and replace_references(item, matched or {}) not in current
            ):
                current.append(item)
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


def entry_lookups(
    mapping: dict[str, Any], payload: dict[str, Any], request_id: str, namespaces: Namespaces
) -> list[str]:
    """The searches (``Type?identifier=...``) that find what the entries an ``append_unique`` adds
    created earlier under this request id, one per entry (its instances OR-ed), for the updates whose
    target the payload names. Entries keyed on a business key (``match``) are not looked up."""
    named: list[str] = []
    for spec in mapping.get("updates") or []:
        if payload.get(spec["target"]):
            for operation in spec["patch"]:
                if "append_unique" in operation:
                    named += _entry_names(operation.get("values", operation.get("value")))
    ctx = BuildContext(payload, {}, request_id, namespaces=namespaces)
    searches = []
    for spec in mapping.get("entries") or []:
        if spec["name"] not in named or "match" in spec:
            continue
        names = [spec["name"]]
        if "each" in spec:
            items = lookup(ctx, spec["each"])
            names = [f"{spec['name']}/{i}" for i in range(len(items) if isinstance(items, list) else 0)]
        rtype = spec["resource"].get("resourceType") if isinstance(spec["resource"], dict) else None
        if names and isinstance(rtype, str):
            param = "_tag" if rtype in ("Provenance", "Bundle", "Binary", "Parameters") else "identifier"
            tokens = ",".join(request_token(request_id, name, namespaces) for name in names)
            searches.append(f"{rtype}?{urlencode({param: tokens}, safe='|:/,')}")
    return searches


def matched_entries(request_id: str, bundles: list[dict[str, Any]], namespaces: Namespaces) -> dict[str, str]:
    """Entry instance name -> ``Type/id`` of a resource found by :func:`entry_lookups` (searchsets)."""
    systems = set(namespaces.systems(REQUEST_ID))
    matched = {}
    for bundle in bundles:
        for entry in bundle.get("entry") or []:
            found = entry.get("resource") or {}
            stamps = [*_as_list(found.get("identifier")), *(found.get("meta") or {}).get("tag", [])]
            for stamp in stamps:
                value = str(stamp.get("value") or stamp.get("code") or "")
                if stamp.get("system") in systems and value.startswith(f"{request_id}/") and found.get("id"):
                    matched[value[len(request_id) + 1 :]] = f"{found['resourceType']}/{found['id']}"
    return matched


def _entry_names(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [str(node[k]) for k in ("$entry", "$entries") if isinstance(node.get(k), str)]
        return own + [name for child in node.values() for name in _entry_names(child)]
    if isinstance(node, list):
        return [name for child in node for name in _entry_names(child)]
    return []


def _as_list(value: Any) -> list[dict[str, Any]]:
    items = value if isinstance(value, list) else [value] if isinstance(value, dict) else []
    return [item for item in items if isinstance(item, dict)]


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
