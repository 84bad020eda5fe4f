"""Entries: a mapping's ``entries`` rendered into transaction entries, each stamped with its request
id and created conditionally on it (or on the entry's business-key ``match``), with its narrative."""

from __future__ import annotations

import html
from typing import Any

from ..errors import ConfigurationError
from ..namespaces import REQUEST_ID, Namespaces
from .engine import BuildContext, PlannedEntry, fill_template, lookup, render


def _instances(spec: dict[str, Any], ctx: BuildContext) -> list[tuple[str, BuildContext]]:
    """The (entry name, context) pairs an entry spec produces: none, one, or one per list element."""
    if "when" in spec and lookup(ctx, spec["when"]) in (None, "", [], {}, False):
        return []
    if "each" not in spec:
        return [(spec["name"], ctx)]
    items = lookup(ctx, spec["each"]) or []
    alias = spec.get("as", "item")
    return [
        (f"{spec['name']}/{i}", ctx.child(**{alias: item, f"{alias}_index": i}))
        for i, item in enumerate(items)
    ]


def narrative(node: Any, ctx: BuildContext, where: str) -> dict[str, str] | None:
    """``Resource.text`` from an entry's ``narrative:`` template: escaped XHTML, one paragraph per line."""
    rendered = render(node, ctx, where)
    lines = [rendered] if isinstance(rendered, str) else [str(x) for x in rendered or [] if x]
    if not lines:
        return None
    body = "".join(f"<p>{html.escape(line, quote=False)}</p>" for line in lines)
    return {"status": "generated", "div": f'<div xmlns="http://www.w3.org/1999/xhtml">{body}</div>'}


def request_identifier(request_id: str, entry_name: str, namespaces: Namespaces) -> dict[str, str]:
    return {"system": namespaces.system(REQUEST_ID), "value": f"{request_id}/{entry_name}"}


def request_token(request_id: str, entry_name: str, namespaces: Namespaces) -> str:
    """The token search value that finds an entry's stamp, written now or by a release that used
    ``urn:fhircare:request-id`` (comma: OR), so a re-run never duplicates what an earlier one wrote."""
    return namespaces.token(REQUEST_ID, f"{request_id}/{entry_name}")


# R4 resources without a repeating identifier: Provenance has none, QuestionnaireResponse has one (0..1).
_TAGGED = {"Provenance", "Bundle", "Binary", "Parameters"}
_SINGLE_IDENTIFIER = {"QuestionnaireResponse"}


def mark_request(resource: dict[str, Any], request_id: str, entry_name: str, namespaces: Namespaces) -> str:
    """Stamp a resource with its request id and return the ``ifNoneExist`` criteria that find it
    (under the current system or the earlier ``urn:fhircare:request-id``).

    The stamp is an identifier where the resource type has one, else a ``meta.tag`` with the same
    system and value (searchable with ``_tag``).
    """
    ident = request_identifier(request_id, entry_name, namespaces)
    token = request_token(request_id, entry_name, namespaces)
    rtype = resource["resourceType"]
    if rtype in _TAGGED or (rtype in _SINGLE_IDENTIFIER and resource.get("identifier")):
        meta = resource.setdefault("meta", {})
        meta["tag"] = [*meta.get("tag", []), {"system": ident["system"], "code": ident["value"]}]
        return f"_tag={token}"
    if rtype in _SINGLE_IDENTIFIER:
        resource["identifier"] = ident
    else:
        resource["identifier"] = [*resource.get("identifier", []), ident]
    return f"identifier={token}"


def build_entries(mapping: dict[str, Any], ctx: BuildContext) -> list[PlannedEntry]:
    """Render every entry of a mapping. Each created resource carries its request-id identifier
    and is created with ``ifNoneExist`` on it (or on the mapping's own ``match`` criteria)."""
    planned: list[tuple[dict[str, Any], str, BuildContext]] = []
    for spec in mapping["entries"]:
        instances = _instances(spec, ctx)
        ctx.entry_urls[spec["name"]] = []
        for name, local in instances:
            planned.append((spec, name, local))
    urls: dict[str, str] = {}
    for spec, name, _ in planned:
        urls[name] = f"urn:uuid:{ctx.new_uuid()}"
        ctx.entry_urls[spec["name"]].append(urls[name])
    entries = []
    for spec, name, local in planned:
        where = f"{mapping['workflow']}.{name}"
        resource = render(spec["resource"], local, where)
        if not isinstance(resource, dict) or "resourceType" not in resource:
            raise ConfigurationError(f"{where}: the template did not produce a resource")
        text = narrative(spec["narrative"], local, f"{where}.narrative") if "narrative" in spec else None
        if text is not None:
            resource = {"resourceType": resource["resourceType"], "text": text, **resource}
        if "match" in spec:
            criteria = fill_template(spec["match"], local)
            if criteria is None:
                raise ConfigurationError(f"{where}: match criteria refer to a missing payload value")
        else:
            criteria = mark_request(resource, ctx.request_id, name, ctx.namespaces)
        entries.append(
            PlannedEntry(
                name=name,
                resource=resource,
                full_url=urls[name],
                url=resource["resourceType"],
                if_none_exist=criteria,
                profile=spec.get("profile"),
            )
        )
    return entries
