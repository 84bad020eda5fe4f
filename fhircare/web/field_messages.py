"""The one mapping from the engine's refusals (JSON-path issues) to a form's fields, in plain words.

Every form of the console reads a refusal through ``field_errors_in_words``: an issue at ``$.a.b`` lands
on the field ``a.b`` (or the field a form shows for it), worded from the rule it broke and the limit it
names in the workflow's own schema ("at most 4,000 characters"), never the schema's text, a regular
expression, the value sent back or a resource id. An issue about no field the form shows goes to the
banner, in the same words, with the field's name."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ..errors import FhircareError
from .api import settings
from .forms import field_label, load_schema, resolve_def

RULE = re.compile(r"^([A-Za-z]+): (.*)$", re.S)
PROFILE = re.compile(r"^profile ([A-Za-z0-9_.-]+): (.*)$", re.S)
REQUIRED = re.compile(r"'([A-Za-z0-9_]+)' is a required property")
DEPENDENCY = re.compile(r"'([A-Za-z0-9_]+)' is a dependency of '([A-Za-z0-9_]+)'")
# what must never reach a coordinator: references (Type/id), quoted regular expressions, JSON paths
REFERENCE = re.compile(r"\b([A-Z][A-Za-z]+)/[A-Za-z0-9.\-]{1,64}\b")
QUOTED_PATTERN = re.compile(r"'\^[^']*'")
PATH = re.compile(r"\$(\.[A-Za-z0-9_]+|\[\d+\])+")
SCHEMA_WORDS = re.compile(r"\b(anyOf|oneOf|allOf|additionalProperties|schema|pattern|\$defs?)\b")


def schema_node(workflow: str, path: list[str | int]) -> Mapping[str, Any]:
    """The (resolved) schema of the field at ``path`` in ``workflow``'s input schema ({} when unknown)."""
    try:
        schema, defs = load_schema(settings().profiles_dir / "workflows", workflow)
    except (OSError, KeyError, ValueError):
        return {}
    node: Mapping[str, Any] = schema
    for part in path:
        _, node = resolve_def(node, defs)
        if isinstance(part, int):
            node = node.get("items") or {}
        else:
            node = (node.get("properties") or {}).get(part) or {}
    _, node = resolve_def(node, defs)
    if not node.get("maxLength") and "oneOf" in node:  # text or a structure: the text branch's limits
        for branch in node["oneOf"]:
            _, resolved = resolve_def(branch, defs)
            if resolved.get("type") == "string":
                return {**resolved, "description": node.get("description", "")}
    return node


def _parts(path: str) -> list[str | int]:
    """``$.goals[0].description`` -> ``["goals", 0, "description"]``."""
    return [int(index) if index else name for name, index in re.findall(r"\.([A-Za-z0-9_]+)|\[(\d+)\]", path)]


def plain(rule: str, message: str, node: Mapping[str, Any]) -> str:
    """What a rule broken at a field means, with the limit the field's schema names."""
    if rule == "required":
        return "required"  # a missing field: the one word every form uses (tests/acceptance pin it)
    if rule == "maxLength":
        return f"Too long: at most {int(node.get('maxLength') or 0):,} characters."
    if rule == "minLength" or (rule == "pattern" and node.get("pattern") == "\\S"):
        return "Write something here: it cannot be empty or only spaces."
    if rule in ("maxItems", "minItems"):
        limit = node.get(rule)
        return f"{'At most' if rule == 'maxItems' else 'At least'} {limit} of these."
    if rule == "maximum":
        return f"At most {node.get('maximum')}."
    if rule == "minimum":
        return f"At least {node.get('minimum')}."
    if rule == "enum":
        return "Choose one of the values offered."
    if rule == "format" or (rule == "pattern" and "date" in str(node.get("pattern", ""))):
        return "Give a full date (and time where asked) in the form offered."
    if rule == "pattern":
        return "Choose it from the list offered; this value is not one the field takes."
    if rule == "type":
        return "This is not the kind of value the field takes."
    if rule == "additionalProperties":
        return "The form sent a field this action does not take."
    return scrub(message)


def scrub(text: str) -> str:
    """A business rule's own words, without references, regular expressions, paths or schema terms."""
    text = REFERENCE.sub(lambda m: f"the chosen {m.group(1)}", text)
    text = QUOTED_PATTERN.sub("the expected form", text)
    text = PATH.sub("this field", text)
    text = SCHEMA_WORDS.sub("", text)
    return re.sub(r"\s{2,}", " ", text).strip().rstrip(":") or "This value is refused."


def field_errors_in_words(
    error: FhircareError,
    workflow: str,
    shown: set[str] | None = None,
    aliases: Mapping[str, str] | None = None,
) -> tuple[dict[str, list[str]], list[str]]:
    """(messages by form field, messages for the banner). ``shown``: the fields the form shows (an
    issue about another one goes to the banner, named); ``aliases``: JSON path -> the field showing it."""
    aliases = aliases or {}
    by_field: dict[str, list[str]] = {}
    general: list[str] = []
    for issue in error.issues or ():
        diagnostics = str(getattr(issue, "diagnostics", "") or "")
        profile = PROFILE.match(diagnostics)
        if profile:  # about what would be written, not about a field of the form
            general.append(_profile_words(profile.group(1), profile.group(2)))
            continue
        paths = [p for p in getattr(issue, "expression", ()) if isinstance(p, str) and p.startswith("$")]
        matched = RULE.match(diagnostics)
        rule, message = (matched.group(1), matched.group(2)) if matched else ("", diagnostics)
        missing = REQUIRED.search(message) if rule == "required" else None
        dependency = DEPENDENCY.search(message) if rule == "dependentRequired" else None
        if missing:
            paths = [f"{p}.{missing.group(1)}" for p in paths or ["$"]]
        elif dependency:
            paths, rule = [f"$.{dependency.group(1)}"], "required"
        elif rule in ("anyOf", "oneOf") and paths in ([], ["$"]):
            general.append(_one_of_these(workflow))
            continue
        for path in paths or ["$"]:
            name = path[2:] if path.startswith("$.") else ""
            name = aliases.get(name, name)
            words = plain(rule, message, schema_node(workflow, _parts(path))) if rule else scrub(message)
            if name and (shown is None or name in shown):
                by_field.setdefault(name, []).append(words)
            else:
                label = field_label(name.rsplit(".", 1)[-1]) if name else ""
                general.append(f"{label}: {words}" if label else words)
    if not by_field and not general:
        general.append(scrub(error.message))
    return by_field, general


def _profile_words(profile: str, rule_text: str) -> str:
    """A local profile's refusal of what would be written, said about the record."""
    matched = RULE.match(rule_text)
    rule, message = (matched.group(1), matched.group(2)) if matched else ("", rule_text)
    missing = REQUIRED.search(message) if rule == "required" else None
    what = (
        f"its {field_label(missing.group(1)).lower()} is missing" if missing else scrub(message).rstrip(".")
    )
    return f"What would be written does not meet the {profile} profile: {what}. Nothing was written."


def _one_of_these(workflow: str) -> str:
    """An ``anyOf`` of required fields, said as the choice it is."""
    schema, _ = load_schema(settings().profiles_dir / "workflows", workflow)
    names = [r for branch in schema.get("anyOf") or [] for r in branch.get("required") or []]
    if not names:
        return "Some of the fields do not fit together."
    return "Fill at least one of: " + ", ".join(field_label(n).lower() for n in names) + "."
