"""``fhircare check`` and the smoke round: what a server supports, and one write/read to prove it works."""

from __future__ import annotations

import uuid
from typing import Any

from ..errors import FhirServerError
from ..fhir import FhirClient
from ..fhir.cleanup import ProbeLeftBehind
from ..namespaces import DEFAULT_NAMESPACES


def check_server(client: FhirClient) -> dict[str, Any]:
    caps = client.capabilities()
    summary: dict[str, Any] = {"base": client.base_url, **caps.summary()}
    summary["paging"] = _probe_paging(client)
    summary["behaviour"] = observed_behaviour(client)
    smart = client.smart_configuration()
    summary["smart"] = (
        {
            "authorization_endpoint": smart.get("authorization_endpoint"),
            "token_endpoint": smart.get("token_endpoint"),
            "capabilities": smart.get("capabilities", []),
            "code_challenge_methods_supported": smart.get("code_challenge_methods_supported", []),
        }
        if smart
        else None
    )
    return summary


#: the ``_include`` each view relies on (each view reads the rest in one batch per page without it)
VIEW_INCLUDES = {
    "worklist": ("Task", "Task:focus"),
    "authorizations": ("Task", "Task:focus"),
    "caseload": ("Task", "Task:owner"),
    "summary": ("CareTeam", "CareTeam:participant"),
}


def observed_behaviour(client: FhirClient) -> dict[str, Any]:
    """What the server was seen to do (probes that write nothing where they can tell), and the
    strategy fhircare picks from it."""
    resolves = client.resolves_conditional_references()
    limit_ok = client.policy.transaction_limit_seen()
    behaviour = client.behaviour
    includes = {view: client.include_works(rtype, spec) for view, (rtype, spec) in VIEW_INCLUDES.items()}
    limit = behaviour.strict_refused_at
    return {
        "conditionalReferencesInTransaction": resolves,
        "referenceCheck": "transaction (no extra request)"
        if resolves
        else "batch (one search before writing)",
        "include": includes,
        "offsetPaging": behaviour.offset_paging,
        "conditionalTransactionLimit": (
            f"refuses {limit} or more entries when one is conditional"
            if limit
            else ("none seen (9 conditional entries accepted)" if limit_ok else "unknown")
        ),
        "writeStrategy": (
            f"conditional creates up to {limit - 1} entries; larger runs look their request id up and send plain creates"
            if limit
            else "conditional creates (ifNoneExist on each entry's request id)"
        ),
        "atomicTransactions": _atomicity(client),
    }


def _atomicity(client: FhirClient) -> str:
    """Probed, never assumed: a transaction whose last entry must fail (see ``probe_atomicity``)."""
    try:
        atomic = client.policy.probe_atomicity()
    except ProbeLeftBehind as left:  # throttled or refused past its clean-up: say what stays
        said = "unknown" if left.verdict is None else _verdict(left.verdict).split(" (")[0]
        return f"{said}; LEFT ON THE SERVER: {', '.join(left.left)} ({left.message})"
    except FhirServerError as exc:  # a token that may not write Basic, a server that refuses it
        return f"unknown (the probe was refused: {exc.message})"
    return _verdict(atomic)


def _verdict(atomic: bool | None) -> str:
    if atomic is None:
        return "unknown (the server ignored If-Match, so a failing entry could not be made)"
    if atomic:
        return "yes (a transaction whose last entry failed wrote nothing)"
    return "no (a transaction is applied entry by entry; the probe deleted what it wrote)"


def _probe_paging(client: FhirClient) -> str:
    """Ask for one Patient per page and see whether the server offers a next link."""
    try:
        page = next(client.search("Patient", {"_count": 1}).pages())
    except FhirServerError as exc:
        return f"unknown ({exc.message})"
    if page.next_url:
        return "yes (next links)"
    if (page.total or 0) <= 1:
        return "not observable (fewer than two patients)"
    return "no next link offered"


def render_check(summary: dict[str, Any]) -> str:
    yes = {True: "yes", False: "no"}
    lines = [
        f"FHIR server   {summary['base']}",
        f"software      {summary['software']}",
        f"FHIR version  {summary['fhirVersion']}",
        f"transaction   {yes[summary['transaction']]}    batch {yes[summary['batch']]}",
        f"conditional   create: {', '.join(summary['conditionalCreate']) or 'none'}",
        f"              update: {', '.join(summary['conditionalUpdate']) or 'none'}",
        f"_include      {', '.join(summary['include']) or 'none'}",
        f"_revinclude   {', '.join(summary['revinclude']) or 'none'}",
        f"paging        {summary['paging']}",
        *_behaviour_lines(summary.get("behaviour") or {}),
        "search parameters fhircare uses:",
    ]
    for rtype, params in summary["searchParams"].items():
        missing = summary["missingSearchParams"].get(rtype, [])
        note = f"  (missing: {', '.join(missing)})" if missing else ""
        lines.append(f"  {rtype:<15} {', '.join(params) or '-'}{note}")
    smart = summary.get("smart")
    if smart:
        lines.append(f"SMART         authorize {smart['authorization_endpoint']}")
        lines.append(f"              token     {smart['token_endpoint']}")
        lines.append(
            f"              PKCE      {', '.join(smart['code_challenge_methods_supported']) or 'not stated'}"
        )
    else:
        lines.append("SMART         no .well-known/smart-configuration")
    return "\n".join(lines)


def smoke_round(client: FhirClient) -> str:
    """Write a synthetic Patient conditionally twice, read it back and find it by identifier."""
    value = f"smoke-{uuid.uuid4().hex[:12]}"
    system = DEFAULT_NAMESPACES.system("smoke")
    patient = {
        "resourceType": "Patient",
        "identifier": [{"system": system, "value": value}],
        "name": [{"family": "Smoke", "given": ["Test"]}],
        "gender": "unknown",
    }
    created = client.create(patient, if_none_exist=f"identifier={system}|{value}")
    again = client.create(patient, if_none_exist=f"identifier={system}|{value}")
    read = client.read("Patient", created["id"])
    found = [p["id"] for p in client.search("Patient", {"identifier": f"{system}|{value}"})]
    ok = again["id"] == created["id"] and read["identifier"][0]["value"] == value and found == [created["id"]]
    verdict = "ok" if ok else "FAILED"
    return (
        f"write/read    {verdict}: created Patient/{created['id']} (version {read['meta'].get('versionId')}), "
        f"conditional re-create returned the same id, search by identifier found {len(found)}"
    )


def _behaviour_lines(observed: dict[str, Any]) -> list[str]:
    if not observed:
        return []
    includes = observed["include"]
    return [
        f"conditional references in transactions  {'resolved' if observed['conditionalReferencesInTransaction'] else 'NOT resolved'}",
        f"  reference check   {observed['referenceCheck']}",
        "_include works      "
        + ", ".join(f"{view} {'yes' if ok else 'no (one batch per page)'}" for view, ok in includes.items()),
        f"transaction limit  {observed['conditionalTransactionLimit']}",
        f"write strategy     {observed['writeStrategy']}",
        f"atomic             {observed['atomicTransactions']}",
    ]
