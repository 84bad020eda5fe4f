"""Outputs copied from the partner under identifiers naming their origin, never under the partner's ids."""

from __future__ import annotations

import copy
from typing import Any

from ..fhir import FhirClient
from .links import URL_SYSTEM

SKIPPED = ("id", "meta")


def remote_url(reference: str, remote_base: str) -> str:
    """A reference as found on the partner, as an absolute URL (relative ones are the partner's)."""
    if reference.startswith(("http://", "https://")):
        return reference.split("/_history")[0]
    return f"{remote_base}/{reference.split('/_history')[0]}"


def _rebase(node: Any, remote_base: str, our_base: str) -> Any:
    """References inside a copy: ours become relative again, the partner's become absolute."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "reference" and isinstance(value, str) and not value.startswith(("#", "urn:")):
                if value.startswith(our_base + "/"):
                    value = value[len(our_base) + 1 :]
                elif not value.startswith(("http://", "https://")):
                    value = f"{remote_base}/{value}"
                out[key] = value
            else:
                out[key] = _rebase(value, remote_base, our_base)
        return out
    if isinstance(node, list):
        return [_rebase(item, remote_base, our_base) for item in node]
    return node


def copy_of(resource: dict[str, Any], origin: str, remote_base: str, our_base: str) -> dict[str, Any]:
    """Our copy of a partner's resource: no id, origin named in an identifier, references rebased."""
    body = {k: copy.deepcopy(v) for k, v in resource.items() if k not in SKIPPED}
    body = dict(_rebase(body, remote_base, our_base))
    identifiers = [i for i in body.get("identifier") or [] if i.get("system") != URL_SYSTEM]
    body["identifier"] = [*identifiers, {"system": URL_SYSTEM, "value": origin}]
    return body


def store_copy(
    local: FhirClient, resource: dict[str, Any], origin: str, remote_base: str, our_base: str
) -> str:
    """Conditional create of the copy on our server (a repeat finds the first): ``Type/id``."""
    body = copy_of(resource, origin, remote_base, our_base)
    written = local.create(body, if_none_exist=f"identifier={URL_SYSTEM}|{origin}")
    return f"{written['resourceType']}/{written['id']}"


def output_references(task: dict[str, Any]) -> list[str]:
    """The references of a Task's outputs (``valueReference``), in order."""
    found = []
    for output in task.get("output") or []:
        ref = (output.get("valueReference") or {}).get("reference")
        if ref:
            found.append(str(ref))
    return found
