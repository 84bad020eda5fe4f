"""Outputs copied from the partner under identifiers naming their origin, never under the partner's ids.

A partner's output is a way into our server until checked: only the resource types a referral's
outcome has are copied (``OUTCOME_TYPES``), an output naming a resource on our server is not linked, and
a copy may name on our server only the referral's own patient (``for``) and ServiceRequest (``focus``,
``basedOn``). Anything else leaves the whole remote version not applied, with the reason recorded on
the link (field paths and type names, never values).
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any

from ..errors import NotFound
from ..fhir import FhirClient
from .context import Exchange
from .links import URL_SYSTEM
from .partners import Partner

SKIPPED = ("id", "meta")
#: what a referral's outcome may be, copied here: Gravity SDOH CC's ``Task.output`` resulting-activity
#: (a Procedure, ``SDOHCC-Procedure``), and the additional content of a completed referral that the
#: guide's workflow returns: an assessment or result (Observation), a completed questionnaire
#: (QuestionnaireResponse), a document (DocumentReference) and a health concern found (Condition).
#: Never a Task, a Subscription or anything else that would act on our server.
OUTCOME_TYPES = frozenset(
    {"Procedure", "Observation", "QuestionnaireResponse", "DocumentReference", "Condition"}
)
#: outcome types whose ``identifier`` is one Identifier, not a list (R4)
SINGLE_IDENTIFIER = frozenset({"QuestionnaireResponse"})
#: the most outputs one remote version may carry: each is a read there and a create here, and a remote
#: change is meant to cost a few requests (a referral's outcome is a Procedure or a handful of results)
MAX_OUTPUTS = 20
_TYPE = re.compile(r"[A-Z][A-Za-z]{1,39}")


def remote_url(reference: str, remote_base: str) -> str:
    """A reference as found on the partner, as an absolute URL (relative ones are the partner's)."""
    if reference.startswith(("http://", "https://")):
        return reference.split("/_history")[0]
    return f"{remote_base}/{reference.split('/_history')[0]}"


def type_of(url: str) -> str:
    """The resource type an absolute ``.../Type/id`` URL names (``unknown`` when it names none: the
    name goes into the link's not-applied list, so nothing a partner wrote freely)."""
    parts = url.rstrip("/").split("/")
    kind = parts[-2] if len(parts) >= 2 else ""
    return kind if _TYPE.fullmatch(kind) else "unknown"


def _rebase(node: Any, remote_base: str, our_base: str, keep: frozenset[str]) -> Any:
    """References inside a copy: ours become relative again; any other (the partner's, a third
    server's, ours spelled otherwise) becomes a logical reference - ``identifier`` naming the URL -
    unless ``keep`` names it: servers file a reference by its ``Type/id`` tail whatever its base
    (the embedded server does), so an absolute ``.../Patient/<one of ours>`` would land the copy in
    that patient's record."""
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key == "reference" and isinstance(value, str) and not value.startswith(("#", "urn:")):
                if value.startswith(our_base + "/"):
                    value = value[len(our_base) + 1 :]
                elif not value.startswith(("http://", "https://")):
                    value = f"{remote_base}/{value}"
                if value.startswith(("http://", "https://")) and value not in keep:
                    out.setdefault("identifier", {"system": URL_SYSTEM, "value": value})
                    continue
                out[key] = value
            elif key == "identifier" and "reference" in node and isinstance(value, dict):
                out[key] = copy.deepcopy(value)  # a Reference's own identifier wins over the URL
            else:
                out[key] = _rebase(value, remote_base, our_base, keep)
        return out
    if isinstance(node, list):
        return [_rebase(item, remote_base, our_base, keep) for item in node]
    return node


def copy_of(
    resource: dict[str, Any], origin: str, remote_base: str, our_base: str, keep: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """Our copy of a partner's resource: no id, origin named in an identifier, references rebased
    (``keep``: absolute references kept as they are - the referral's own, as our Task names them)."""
    body = {k: copy.deepcopy(v) for k, v in resource.items() if k not in SKIPPED}
    body = dict(_rebase(body, remote_base, our_base, keep))
    named = {"system": URL_SYSTEM, "value": origin}
    if resource.get("resourceType") in SINGLE_IDENTIFIER:  # 0..1: the origin names it (the key of the copy)
        body["identifier"] = named
        return body
    identifiers = [i for i in body.get("identifier") or [] if i.get("system") != URL_SYSTEM]
    body["identifier"] = [*identifiers, named]
    return body


def references_here(node: Any, allowed: set[str], path: str = "") -> list[str]:
    """The paths (``subject``, ``performer[0].actor``) of a copy's references to our server - relative
    once rebased - that are not in ``allowed``."""
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            where = f"{path}.{key}" if path else key
            if key == "reference" and isinstance(value, str):
                here = not value.startswith(("#", "urn:", "http://", "https://"))
                if here and value.split("/_history")[0] not in allowed:
                    found.append(path or key)
            else:
                found += references_here(value, allowed, where)
    elif isinstance(node, list):
        for n, item in enumerate(node):
            found += references_here(item, allowed, f"{path}[{n}]")
    return found


def referral_references(ours: dict[str, Any]) -> set[str]:
    """What a copy may name on our server: our Task's patient and ServiceRequest (relative)."""
    refs = [ours.get("for"), ours.get("focus"), *(ours.get("basedOn") or [])]
    return {
        str(r["reference"]).split("/_history")[0] for r in refs if isinstance(r, dict) and r.get("reference")
    }


def store_copy(local: FhirClient, body: dict[str, Any], origin: str) -> str:
    """Conditional create of the copy (``copy_of``) on our server (a repeat finds the first): ``Type/id``."""
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


def prefetchable(urls: list[str], remote_base: str) -> list[str]:
    """The outputs worth reading with a version's history: on the partner's server and of an outcome
    type; none when there are more than ``MAX_OUTPUTS`` (that version is refused unread)."""
    if len(urls) > MAX_OUTPUTS:
        return []
    return [u for u in urls if u.startswith(remote_base + "/") and type_of(u) in OUTCOME_TYPES]


@dataclass(frozen=True)
class Refused:
    """Why a remote version's outputs are not applied (type names and field paths only)."""

    why: str


def copied_outputs(
    exchange: Exchange,
    partner: Partner,
    version: dict[str, Any],
    fetched: dict[str, dict[str, Any]],
    ours: dict[str, Any],
) -> list[dict[str, Any]] | Refused:
    """The version's outputs pointing at our copies (made here once every output is checked), or why
    they cannot be: one points nowhere, names our server, is of no outcome type, or its copy would name
    another record here."""
    if len(version.get("output") or []) > MAX_OUTPUTS:
        return Refused(f"more than {MAX_OUTPUTS} outputs")
    remote = exchange.remote(partner.name)
    base = remote.base_url
    mine = set(output_references(ours))
    allowed = referral_references(ours)
    planned: list[tuple[dict[str, Any], str, dict[str, Any] | None]] = []
    for output in version.get("output") or []:
        item = dict(output)
        ref = (output.get("valueReference") or {}).get("reference")
        if not ref:
            planned.append((item, "", None))
            continue
        origin = remote_url(str(ref), base)
        local = exchange.partners.local(origin)
        if local is not None:  # a resource of ours: only one of our copies already linked stays
            if local not in mine:
                return Refused("an output names a resource on our server")
            item["valueReference"] = {"reference": local}
            planned.append((item, "", None))
            continue
        kind = type_of(origin)
        if kind not in OUTCOME_TYPES:
            return Refused(f"an output of type {kind} is no referral outcome")
        resource = fetched.get(origin)
        if resource is None and origin.startswith(base + "/"):
            try:
                resource = remote.read_reference(origin[len(base) + 1 :])
            except NotFound:
                resource = None
        if resource is None or resource.get("resourceType") != kind:
            return Refused("an output points nowhere")
        fetched[origin] = resource
        body = copy_of(resource, origin, base, exchange.partners.base, frozenset(allowed))
        stray = references_here(body, allowed)
        if stray:
            return Refused(f"an output's {kind} names another record here ({', '.join(stray[:5])})")
        planned.append((item, origin, body))
    out = []
    for item, origin, copied in planned:
        if copied is not None:
            item["valueReference"] = {"reference": store_copy(exchange.local, copied, origin)}
        out.append(item)
    return out
