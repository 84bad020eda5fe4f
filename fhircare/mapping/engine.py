"""The mapping engine: render a workflow's YAML template against a payload into planned transaction entries.

Template vocabulary (a dict whose only ``$`` key is one of these is an expression):

``{$: path}``                      the payload value at ``path`` (``a.b.0.c``; loop variables by name)
``{$ref: path}``                   ``{"reference": value}``; ``{$refs: path}`` a list of them
``{$entry: name}``                 reference to an entry created in the same transaction (``urn:uuid``);
                                   ``index: X`` picks one of a repeated (``each``) entry
``{$entries: name}``               references to every entry of a repeated (``each``) entry
``{$code: path, table: T}``        CodeableConcept from ``{system, code, display}``, a key of table T, or text
                                   (free text only with ``text_ok: true``; ``default:`` a table key;
                                   ``lenient: true``: only a key of T, anything else gives nothing)
``{$tablecode: key, table: T}``    CodeableConcept of a fixed key of table T
``{$text: path, table: T}``        the human text of a code (display, text, or the table's display)
``{$join: [X, Y], sep: " "}``      rendered parts joined, absent ones skipped
``{$coding: path, table: T}``      the same as a single Coding
``{$if: path, then: X, else: Y}``  X when the value is present (or ``equals`` it), else Y; the test may
                                   also be an expression, e.g. ``{$if: {$fn: is_type, args: [...]}}``
``{$each: path, as: item, do: X}`` X once per element of a list; inside a list the results are spliced in
``{$fn: name, args: [..]}``        a named transform of mapping/transforms.py
``{$format: "text {path}"}``       a string with payload values filled in (absent when one is missing)
``{$now: datetime|date}``          the run's timestamp

``namespace.<name>`` (in a path or a ``{...}`` field) is one of fhircare's own systems under the
deployment's base (``namespace.member-id``: ``<base>sid/member-id``; see fhircare/namespaces.py).

Values that come out ``None``, ``[]`` or ``{}`` are dropped, so optional fields simply disappear.

An entry's ``narrative:`` (any template giving a string or a list of strings) becomes the resource's
``text``: status ``generated``, one escaped XHTML paragraph per string.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .. import clock
from ..errors import ConfigurationError
from ..namespaces import Namespaces
from .codes import code_text, codeable, coding
from .language import EXPRESSIONS
from .transforms import TRANSFORMS, iso

_FORMAT_FIELD = re.compile(r"\{([A-Za-z0-9_.\-]+)\}")
_MISSING = object()


@dataclass
class BuildContext:
    """Everything a render needs besides the template."""

    payload: dict[str, Any]
    codes: dict[str, dict[str, Any]]
    request_id: str
    now: datetime = field(default_factory=clock.now)
    new_uuid: Callable[[], str] = field(default_factory=lambda: lambda: str(uuid.uuid4()))
    entry_urls: dict[str, list[str]] = field(default_factory=dict)
    scope: dict[str, Any] = field(default_factory=dict)
    namespaces: Namespaces = field(default_factory=Namespaces)

    def child(self, **bindings: Any) -> BuildContext:
        return BuildContext(
            self.payload,
            self.codes,
            self.request_id,
            self.now,
            self.new_uuid,
            self.entry_urls,
            {**self.scope, **bindings},
            self.namespaces,
        )


@dataclass
class PlannedEntry:
    """One transaction entry: a resource to create (conditionally) or update (with If-Match)."""

    name: str
    resource: dict[str, Any]
    full_url: str
    method: str = "POST"
    url: str = ""
    if_none_exist: str | None = None
    if_match: str | None = None
    profile: str | None = None

    def bundle_entry(self) -> dict[str, Any]:
        request: dict[str, Any] = {"method": self.method, "url": self.url or self.resource["resourceType"]}
        if self.if_none_exist:
            request["ifNoneExist"] = self.if_none_exist
        if self.if_match:
            request["ifMatch"] = self.if_match
        return {"fullUrl": self.full_url, "resource": self.resource, "request": request}


# ---- values -----------------------------------------------------------------------------------


def lookup(ctx: BuildContext, path: str) -> Any:
    """The value at a dotted path: loop variables first, then the payload. Missing -> None."""
    head, _, rest = path.partition(".")
    if head in ctx.scope:
        node: Any = ctx.scope[head]
    elif head == "namespace":
        node = ctx.namespaces.scope()
    else:
        node = ctx.payload.get(head, _MISSING)
    if node is _MISSING:
        return None
    for part in rest.split(".") if rest else ():
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
        if node is None:
            return None
    return node


def fill_template(template: str, ctx: BuildContext) -> str | None:
    missing = False

    def fill(match: re.Match[str]) -> str:
        nonlocal missing
        value = lookup(ctx, match.group(1))
        if value is None:
            missing = True
            return ""
        return str(value)

    text = _FORMAT_FIELD.sub(fill, template)
    return None if missing else text


def _entry_refs(ctx: BuildContext, name: str, where: str) -> list[dict[str, str]]:
    if name not in ctx.entry_urls:
        raise ConfigurationError(f"{where}: no entry named {name!r}")
    return [{"reference": url} for url in ctx.entry_urls[name]]


def evaluate(node: dict[str, Any], ctx: BuildContext, where: str) -> Any:
    """Evaluate one expression node."""
    if "$" in node:
        value = lookup(ctx, node["$"])
        return node.get("default") if value is None else value
    if "$now" in node:
        return ctx.now.date().isoformat() if node["$now"] == "date" else iso(ctx.now)
    if "$ref" in node:
        value = lookup(ctx, node["$ref"])
        return {"reference": value} if value else None
    if "$refs" in node:
        values = lookup(ctx, node["$refs"]) or []
        return [{"reference": v} for v in values if v]
    if "$entry" in node:
        refs = _entry_refs(ctx, node["$entry"], where)
        index = render(node.get("index", 0), ctx, where)
        return refs[int(index)] if isinstance(index, int) and 0 <= index < len(refs) else None
    if "$entries" in node:
        return _entry_refs(ctx, node["$entries"], where)
    if "$code" in node:
        value = lookup(ctx, node["$code"])
        if node.get("lenient") and not (
            isinstance(value, str) and value in ctx.codes.get(node.get("table", ""), {})
        ):
            return None  # only what the table knows: a derived code, never a refusal
        return codeable(
            node.get("default") if value is None else value, node, ctx.codes, _payload_path(node["$code"])
        )
    if "$tablecode" in node:
        return codeable(node["$tablecode"], node, ctx.codes, where)
    if "$text" in node:
        return code_text(lookup(ctx, node["$text"]), node.get("table"), ctx.codes)
    if "$join" in node:
        parts = [render(part, ctx, where) for part in node["$join"]]
        text = str(node.get("sep", " ")).join(str(p) for p in parts if p not in (None, ""))
        return text or None
    if "$coding" in node:
        return coding(
            lookup(ctx, node["$coding"]), node.get("table"), ctx.codes, _payload_path(node["$coding"])
        )
    if "$if" in node:
        test = node["$if"]
        value = render(test, ctx, where) if isinstance(test, dict) else lookup(ctx, test)
        hit = value == node["equals"] if "equals" in node else value not in (None, "", [], {}, False)
        return render(node.get("then") if hit else node.get("else"), ctx, where)
    if "$each" in node:
        items = lookup(ctx, node["$each"]) or []
        name = node.get("as", "item")
        return [
            render(node["do"], ctx.child(**{name: item, f"{name}_index": i}), f"{where}[{i}]")
            for i, item in enumerate(items)
        ]
    if "$fn" in node:
        fn = TRANSFORMS.get(node["$fn"])
        if fn is None:
            raise ConfigurationError(f"{where}: unknown transform {node['$fn']!r}")
        args = [render(a, ctx, where) for a in node.get("args", [])]
        return fn(*args)
    if "$format" in node:
        return fill_template(node["$format"], ctx)
    raise ConfigurationError(f"{where}: unknown expression {sorted(node)}")


def _payload_path(path: str) -> str:
    return "$." + path


def _empty(value: Any) -> bool:
    return value is None or value == [] or value == {}


#: the keys that make a template node an expression (``evaluate``); any other ``$`` key is refused there
EXPRESSION_KEYS = frozenset(EXPRESSIONS)


def render(node: Any, ctx: BuildContext, where: str = "$") -> Any:
    """Render a template node; absent values vanish."""
    if isinstance(node, dict):
        if not EXPRESSION_KEYS.isdisjoint(node):
            return evaluate(node, ctx, where)
        out = {}
        for key, child in node.items():
            if key.startswith("$"):  # not an expression this language has: evaluate says so
                return evaluate(node, ctx, where)
            value = render(child, ctx, f"{where}.{key}")
            if not _empty(value):
                out[key] = value
        return out or None
    if isinstance(node, list):
        items: list[Any] = []
        for i, child in enumerate(node):
            value = render(child, ctx, f"{where}[{i}]")
            if isinstance(child, dict) and "$each" in child and isinstance(value, list):
                items.extend(v for v in value if not _empty(v))
            elif (
                isinstance(child, dict)
                and ("$entries" in child or "$refs" in child)
                and isinstance(value, list)
            ):
                items.extend(value)
            elif not _empty(value):
                items.append(value)
        return items or None
    return node
