"""SMART scopes: which are well formed, and what a granted set allows.

v1 (``user/Task.write``, ``patient/*.read``) and v2 (``user/Task.cu``, ``patient/*.rs``) are understood.
A v2 scope with a query (``user/Task.u?code=approve``) grants a subset fhircare cannot evaluate here, so
it grants nothing. A ``patient/`` scope grants only inside the session's patient, and nothing when the
token named no patient; a ``system/`` scope belongs to Backend Services callers, never to a user launch.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import Unauthorized

V1_MEANING = {"read": "rs", "write": "cud", "*": "cruds"}
RESOURCE_SCOPE = re.compile(r"^(patient|user|system)/(\*|[A-Z][A-Za-z]{1,63})\.([a-z*]+)(\?.*)?$")
V2_ORDER = "cruds"


@dataclass(frozen=True)
class Grant:
    """What a caller was granted: its scopes and the contexts (user, patient, system) they may use."""

    scopes: frozenset[str]
    contexts: frozenset[str]

    def allows(self, resource_type: str, interaction: str) -> bool:
        return any(_scope_allows(scope, resource_type, interaction, self.contexts) for scope in self.scopes)


def _permissions(perms: str) -> str | None:
    """``cu`` -> ``cu``; ``write`` -> ``cud``; None when malformed (v2 letters out of order, repeated)."""
    if perms in V1_MEANING:
        return V1_MEANING[perms]
    if not perms or any(p not in V2_ORDER for p in perms):
        return None
    positions = [V2_ORDER.index(p) for p in perms]
    return perms if positions == sorted(set(positions)) else None


def malformed(scopes: Iterable[str], contexts: Iterable[str]) -> list[str]:
    """Resource scopes that are not SMART grammar, or that name a context this caller cannot have."""
    allowed = set(contexts)
    bad = []
    for scope in scopes:
        context = scope.split("/", 1)[0]
        if context not in ("patient", "user", "system"):
            continue  # launch, openid, fhirUser, offline_access ...: no resource access
        match = RESOURCE_SCOPE.match(scope)
        if match is None or _permissions(match.group(3)) is None or context not in allowed:
            bad.append(scope)
    return bad


def refuse_malformed(scopes: Iterable[str], contexts: Iterable[str]) -> None:
    bad = malformed(scopes, contexts)
    if bad:
        raise Unauthorized(
            f"the granted scopes are malformed or not for this kind of caller: {' '.join(sorted(bad))}",
            http_status=401,
        )


def _scope_allows(scope: str, resource_type: str, interaction: str, contexts: frozenset[str]) -> bool:
    match = RESOURCE_SCOPE.match(scope)
    if match is None or match.group(4):  # a query narrows the grant: nothing fhircare can honour here
        return False
    context, rtype, perms = match.group(1), match.group(2), _permissions(match.group(3))
    if context not in contexts or perms is None:
        return False
    return rtype in ("*", resource_type) and interaction in perms
