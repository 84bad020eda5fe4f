"""Forms generated from the workflows' own input schemas (profiles/workflows/*.schema.json): the same
JSON Schemas the API validates with, so no workflow has a hand-written form.

``form_fields`` turns a schema into a tree of ``Field`` (one per property; objects become groups, arrays
of objects a few repeated groups); ``payload_from_form`` reads the posted form back into a payload by
the same tree, leaving out what was left empty. Field names are JSON paths without the ``$.``
(``goals[0].description``), so the errors fhircare reports by JSON path land next to their field.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from functools import lru_cache
from pathlib import Path
from typing import Any

#: set by the page, never shown as fields
HIDDEN = ("request_id", "on_behalf_of")
#: suffix of the second control of a payer or vendor picker (an organization not marked for the role)
OTHER = ":other"
#: array items of objects rendered empty, for the coordinator to fill
REPEATS = 2
#: code fields -> the code table whose keys a select offers (by property name; the workflows' mappings
#: read these fields through these tables)
CODE_TABLES = {
    "service": "services",
    "reason": "reasons",
    "category": "service-categories",
    "topic": "education-topics",
    "diagnosis": "diagnoses",
    "place": "places-of-service",
    "relationship": "relationships",
    "role": "care-team-roles",
    "code": "services",
}
#: a reference definition -> the kinds of resource its picker offers
PICKS = {
    "practitioner_ref": ("PractitionerRole", "Practitioner"),
    "performer_ref": ("HealthcareService", "Organization", "PractitionerRole", "Practitioner"),
    "organization_ref": ("Organization",),
    "recipient_ref": ("Patient", "RelatedPerson", "Practitioner", "Organization"),
    "location_ref": ("Location",),
    "careplan_ref": ("CarePlan",),
    "servicerequest_ref": ("ServiceRequest",),
    "appointment_ref": ("Appointment",),
    "task_ref": ("Task",),
    "coverage_ref": ("Coverage",),
    "relatedperson_ref": ("RelatedPerson",),
    "encounter_ref": ("Encounter",),
    "patient_ref": ("Patient",),
    "ref": ("ServiceRequest", "Task", "Appointment", "CarePlan", "Coverage"),
}


@dataclass
class Field:
    name: str  # the JSON path without "$.": care_plan, goals[0].description
    label: str
    kind: str  # ref | select | code | text | textarea | date | datetime | number | checkbox | list | group
    required: bool = False
    help: str = ""
    options: tuple[str, ...] = ()  # enum values
    table: str | None = None  # code table of a code field
    picks: tuple[str, ...] = ()  # resource types a reference picker offers
    many: bool = False  # an array of references or strings
    free_text: bool = False  # a code or, when it is no key of its table, {"text": ...}
    children: list[Field] = field(default_factory=list)

    @property
    def html_id(self) -> str:
        return "f-" + "".join(c if c.isalnum() else "-" for c in self.name)


@lru_cache(maxsize=64)
def _read(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return loaded


def load_schema(workflows_dir: Path, workflow: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the workflow's schema, the shared $defs)."""
    defs = _read(workflows_dir / "_defs.schema.json")["$defs"]
    return _read(workflows_dir / f"{workflow}.schema.json"), defs


def _def_name(node: Mapping[str, Any]) -> str | None:
    ref = node.get("$ref")
    if isinstance(ref, str) and "#/$defs/" in ref:
        return ref.rsplit("/", 1)[-1]
    for part in node.get("allOf") or []:
        found = _def_name(part)
        if found:
            return found
    return None


def resolve_def(node: Mapping[str, Any], defs: Mapping[str, Any]) -> tuple[str | None, Mapping[str, Any]]:
    name = _def_name(node)
    if name and name in defs and "$ref" in node:
        return name, {**defs[name], **{k: v for k, v in node.items() if k != "$ref"}}
    return name, node


def field_label(name: str) -> str:
    words = name.replace("_", " ").replace("-", " ")
    return words[:1].upper() + words[1:]


def field_of(name: str, path: str, node: Mapping[str, Any], defs: Mapping[str, Any], required: bool) -> Field:
    definition, node = resolve_def(node, defs)
    help_text = str(node.get("description") or "")
    base = Field(path, field_label(name), "text", required, help_text)
    if definition and (definition == "ref" or definition.endswith("_ref")):
        base.kind, base.picks = "ref", PICKS.get(definition, PICKS["ref"])
        return base
    if definition in ("code", "code_or_text") or (
        name in CODE_TABLES and "oneOf" in node and definition is None
    ):
        base.kind, base.table = "code", CODE_TABLES.get(name)
        base.free_text = definition == "code_or_text"
        return base
    if definition == "date":
        base.kind = "date"
    elif definition == "datetime":
        base.kind = "datetime"
    elif definition == "text":
        base.kind = "textarea"
    elif "enum" in node:
        base.kind, base.options = "select", tuple(str(v) for v in node["enum"])
    elif node.get("type") == "boolean":
        base.kind = "checkbox"
    elif node.get("type") == "integer":
        base.kind = "number"
    elif node.get("type") == "object" and isinstance(node.get("properties"), dict):
        base.kind = "group"
        base.children = fields_of(node, defs, prefix=f"{path}.")
    elif node.get("type") == "array":
        item_def, item = resolve_def(node.get("items") or {}, defs)
        if item.get("type") == "object" and isinstance(item.get("properties"), dict):
            base.kind = "group"
            base.many = True
            for i in range(REPEATS):
                row = Field(f"{path}[{i}]", f"{field_label(name)} {i + 1}", "group", False)
                row.children = fields_of(item, defs, prefix=f"{path}[{i}].")
                base.children.append(row)
        else:
            inner = field_of(name, path, node.get("items") or {}, defs, required)
            inner.many, inner.label, inner.help = True, base.label, help_text or inner.help
            if inner.kind not in ("ref", "code"):
                inner.kind = "list"
            _ = item_def
            return inner
    elif "oneOf" in node:  # free text or a structure: offered as text
        base.kind = "text"
    return base


def fields_of(schema: Mapping[str, Any], defs: Mapping[str, Any], prefix: str = "") -> list[Field]:
    required = set(schema.get("required") or [])
    return [
        field_of(name, f"{prefix}{name}", node, defs, name in required)
        for name, node in (schema.get("properties") or {}).items()
        if not (prefix == "" and name in HIDDEN)
    ]


#: per workflow, code fields read through another table than ``CODE_TABLES`` names (the tables the
#: workflow's mapping looks them up in, so the form offers only codes the workflow accepts)
WORKFLOW_TABLES = {"prior-auth": {"service": "prior-auth-services", "category": "prior-auth-categories"}}
#: per workflow, fields the form does not show: the prior-auth request form asks for a request; the
#: payer's answer is recorded from the authorizations page
WORKFLOW_HIDES = {"prior-auth": frozenset({"action", "task", "claim_response", "manual", "actor"})}


def form_fields(workflows_dir: Path, workflow: str) -> list[Field]:
    schema, defs = load_schema(workflows_dir, workflow)
    hidden = WORKFLOW_HIDES.get(workflow, frozenset()) | _signed_in_hides()
    fields = [f for f in fields_of(schema, defs) if f.name not in hidden]
    tables = WORKFLOW_TABLES.get(workflow, {})
    for f in flatten(fields):
        if f.kind == "code" and f.name.rsplit(".", 1)[-1] in tables:
            f.table = tables[f.name.rsplit(".", 1)[-1]]
    return fields


def _signed_in_hides() -> frozenset[str]:
    """In a SMART session the actor is the signed-in user (actors.py): no form asks who acts there, and
    a posted ``actor`` is not read."""
    from flask import g, has_app_context

    return frozenset({"actor"}) if has_app_context() and g.get("smart_session") is not None else frozenset()


def flatten(fields: list[Field]) -> list[Field]:
    out: list[Field] = []
    for f in fields:
        out += flatten(f.children) if f.kind == "group" else [f]
    return out


def _instant(text: str, zone: tzinfo | None) -> str:
    """``2026-12-07T09:00`` in ``zone`` (UTC when None) as a FHIR instant in UTC."""
    try:
        moment = datetime.fromisoformat(text).replace(tzinfo=zone or UTC)
    except ValueError:
        return f"{text}:00Z"  # not a time: the schema refuses it at its field
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _value(
    f: Field, form: Mapping[str, Any], keys: Callable[[str | None], set[str]], zone: tzinfo | None = None
) -> Any:
    getlist = getattr(form, "getlist", None)
    other = str(form.get(f"{f.name}{OTHER}") or "").strip() if f.kind == "ref" and not f.many else ""
    if other:  # a role picker's way out: an organization not (yet) marked for the role, chosen apart
        return other
    raw_values = [str(v) for v in (getlist(f.name) if getlist else [form.get(f.name, "")])]
    values = [v.strip() for v in raw_values if v and v.strip()]
    if f.kind == "checkbox":
        return True if values else None
    if not values:
        return None
    if f.many:
        items = [p.strip() for v in values for p in (v.split(",") if f.kind == "list" else [v]) if p.strip()]
        return items or None
    text = values[0]
    if f.kind == "number":
        return int(text) if text.lstrip("-").isdigit() and len(text) < 10 else text
    if f.kind == "datetime" and len(text) == 16:  # <input type=datetime-local>: minutes in the console's zone
        return _instant(text, zone)
    if f.kind == "code" and f.free_text and text not in keys(f.table):
        return {"text": text}
    return text


def payload_from_form(
    fields: list[Field],
    form: Mapping[str, Any],
    keys: Callable[[str | None], set[str]],
    zone: tzinfo | None = None,
) -> dict[str, Any]:
    """The payload a posted form stands for; empty fields and empty groups are left out. ``keys``
    names the keys of a code table (a free-text code field that holds none of them is ``{text}``)."""
    payload: dict[str, Any] = {}
    for f in fields:
        key = f.name.rsplit(".", 1)[-1]
        if f.kind == "group" and f.many:
            rows = [payload_from_form(row.children, form, keys, zone) for row in f.children]
            items = [row for row in rows if row]
            if items:
                payload[key] = items
        elif f.kind == "group":
            inner = payload_from_form(f.children, form, keys, zone)
            if inner:
                payload[key] = inner
        else:
            value = _value(f, form, keys, zone)
            if value is not None:
                payload[key] = value
    return payload
