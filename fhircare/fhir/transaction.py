"""Reading the answer to a transaction: what was written, and whether the server did what was asked.

A transaction-response is trusted only when every entry is 2xx and no stored reference still holds a
``?`` (a conditional reference the server did not resolve). A server that processes a transaction
entry by entry (HTTP 200 with failed entries inside) wrote some entries and not others: that becomes
:class:`~fhircare.errors.PartialWrite`, naming the failed entries and what was written.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import (
    Conflict,
    FhirServerError,
    Issue,
    NotFound,
    PartialWrite,
    PreconditionFailed,
    ServerValidationError,
    UnresolvedStoredReference,
)


def reference_from_location(location: str) -> str | None:
    """``Type/id`` from a Location (absolute or relative, with or without ``/_history/v``)."""
    if not location:
        return None
    path = location.split("?")[0].split("/_history")[0].rstrip("/")
    parts = path.split("/")
    return f"{parts[-2]}/{parts[-1]}" if len(parts) >= 2 and parts[-2] else None


def reference_of(resource: Any) -> str | None:
    if isinstance(resource, dict) and resource.get("resourceType") and resource.get("id"):
        return f"{resource['resourceType']}/{resource['id']}"
    return None


def entry_status(result: dict[str, Any]) -> str:
    return str((result.get("response") or {}).get("status", "")).strip()


def entry_reference(result: dict[str, Any]) -> str | None:
    response = result.get("response") or {}
    return reference_from_location(str(response.get("location") or "")) or reference_of(
        result.get("resource")
    )


def check_answer(names: Sequence[str], answer: dict[str, Any], stored_queries: bool = True) -> None:
    """Refuse an answer with a failed entry or an unresolved stored reference (see the module doc);
    ``stored_queries=False``: no conditional reference was sent, so none can have been stored."""
    results = answer.get("entry") or []
    failed = [
        (name, result)
        for name, result in zip(names, results, strict=False)
        if not entry_status(result).startswith("2")
    ]
    if failed:
        if not any(entry_status(result).startswith("2") for result in results):
            raise _refusal(failed)
        written = [
            ref
            for name, result in zip(names, results, strict=False)
            if entry_status(result).startswith("2") and (ref := entry_reference(result))
        ]
        issues = [
            Issue(
                "error",
                "incomplete",
                f"entry '{name}' answered {entry_status(result) or 'nothing'}: {entry_diagnostics(result)}",
            )
            for name, result in failed
        ]
        raise PartialWrite(
            f"the server applied the transaction entry by entry and {len(failed)} of {len(results)} entries "
            f"failed; {len(written)} stayed written ({', '.join(written) or 'none'})",
            issues,
            written=written,
            results=list(results),
        )
    unresolved = [
        (name, value)
        for name, result in zip(names, results, strict=False)
        for value in (stored_conditional_references(result.get("resource")) if stored_queries else ())
    ]
    if unresolved:
        written = [ref for result in results if (ref := entry_reference(result))]
        raise UnresolvedStoredReference(
            f"the server stored {len(unresolved)} conditional reference(s) without resolving them "
            f"({', '.join(sorted({n for n, _ in unresolved}))}); written: {', '.join(written)}. "
            "Set FHIRCARE_VERIFY_REFERENCES=batch for this server",
            [
                Issue("error", "processing", f"entry '{name}' holds a reference containing '?'")
                for name, _ in unresolved
            ],
            written=written,
            results=list(results),
        )


def _refusal(failed: list[tuple[str, dict[str, Any]]]) -> FhirServerError:
    """Every entry failed inside a 200 (nothing was written): the error its status would have raised."""
    name, result = failed[0]
    code = int(entry_status(result)[:3] or 0) if entry_status(result)[:3].isdigit() else 0
    kind = {400: ServerValidationError, 422: ServerValidationError, 404: NotFound, 409: Conflict}.get(
        code, PreconditionFailed if code == 412 else FhirServerError
    )
    issues = [
        Issue("error", "invalid", f"entry '{n}' answered {entry_status(r)}: {entry_diagnostics(r)}")
        for n, r in failed
    ]
    return kind(
        f"the server refused the transaction ({entry_status(result)} on entry '{name}'); nothing was written",
        issues,
        http_status=code or None,
    )


def stored_conditional_references(node: Any) -> list[str]:
    """Every ``reference`` in a resource that still holds a query (``Type?...``)."""
    found: list[str] = []
    if isinstance(node, dict):
        value = node.get("reference")
        if isinstance(value, str) and "?" in value and not value.startswith(("http://", "https://", "urn:")):
            found.append(value)
        for child in node.values():
            found += stored_conditional_references(child)
    elif isinstance(node, list):
        for child in node:
            found += stored_conditional_references(child)
    return found


def is_size_refusal(error: FhirServerError) -> bool:
    """A 400 refusing a transaction for how many conditional entries it holds (Medplum: more than 8
    entries needing strict isolation). Read from the server's own words; nothing was written."""
    if error.http_status != 400:
        return False
    text = " ".join([error.message, *(i.diagnostics or "" for i in error.issues)]).lower()
    return "too many entries" in text or "strict isolation" in text


def entry_diagnostics(result: dict[str, Any]) -> str:
    outcome = (result.get("response") or {}).get("outcome") or result.get("resource") or {}
    for issue in outcome.get("issue") or [] if isinstance(outcome, dict) else []:
        text = issue.get("diagnostics") or (issue.get("details") or {}).get("text")
        if text:
            return str(text)[:200]
    return "no diagnostics"


def written_references(
    entries: Sequence[tuple[str, str, str | None]], answer: dict[str, Any]
) -> tuple[list[str], list[str], list[str]]:
    """``(written, created, updated)`` from an answer, for entries given as ``(name, method, url)``."""
    written: list[str] = []
    created: list[str] = []
    updated: list[str] = []
    for (name, method, url), result in zip(entries, answer.get("entry") or [], strict=True):
        reference = entry_reference(result) or url
        if not reference or "/" not in reference or "?" in reference:
            raise FhirServerError(f"the transaction answer for {name} names no resource")
        written.append(reference)
        status = entry_status(result)
        if status.startswith("201"):
            created.append(reference)
        elif method == "PUT" and status.startswith("200"):
            updated.append(reference)
    return written, created, updated


# ---- building -------------------------------------------------------------------------------


def is_idempotent_bundle(bundle: Mapping[str, Any]) -> bool:
    """A transaction is safe to re-send when no entry can create a second copy of anything."""
    for entry in bundle.get("entry") or []:
        request = entry.get("request") or {}
        method = str(request.get("method", "")).upper()
        if method == "POST" and not request.get("ifNoneExist"):
            return False
        if method == "PATCH" and not request.get("ifMatch"):
            return False
    return True


def transaction_bundle(entries: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "transaction", "entry": list(entries)}


def conditional_entry_count(entries: Sequence[dict[str, Any]]) -> int:
    """Entries that make a server isolate the transaction strictly: conditional create, update, delete."""
    count = 0
    for entry in entries:
        request = entry.get("request") or {}
        method = str(request.get("method", "")).upper()
        if request.get("ifNoneExist") or (
            method in ("PUT", "DELETE", "PATCH") and "?" in str(request.get("url", ""))
        ):
            count += 1
    return count


def as_plain_creates(entries: Sequence[dict[str, Any]], existing: dict[str, str]) -> list[dict[str, Any]]:
    """The same entries without ``ifNoneExist``, for servers that limit conditional transactions.

    ``existing`` maps the fullUrl of an entry whose business key (``match``) already matches a resource
    to that resource's ``Type/id``: the entry becomes a read of it inside the transaction (so the
    answer still names it) and every ``urn:uuid`` reference to it becomes literal. The caller has
    looked its request id up first, so plain creates cannot write anything twice after a lost answer.
    """
    plain: list[dict[str, Any]] = []
    for entry in entries:
        full_url = str(entry.get("fullUrl", ""))
        if full_url in existing:
            plain.append({"fullUrl": full_url, "request": {"method": "GET", "url": existing[full_url]}})
            continue
        request = {k: v for k, v in (entry.get("request") or {}).items() if k != "ifNoneExist"}
        plain.append({**entry, "request": request})
    return [replace_references(entry, existing) for entry in plain] if existing else plain


def literal_as_conditional(entries: Sequence[dict[str, Any]], references: set[str]) -> list[dict[str, Any]]:
    """The entries with ``{"reference": "Type/id"}`` sent as ``Type?_id=id`` for the given references:
    a server that resolves conditional references then refuses the transaction if one names nothing."""
    mapping = {ref: f"{ref.partition('/')[0]}?_id={ref.partition('/')[2]}" for ref in references}
    return [replace_references(entry, mapping) for entry in entries]


def replace_references(node: Any, mapping: Mapping[str, str]) -> Any:
    """A copy of ``node`` with every ``reference`` that is a key of ``mapping`` replaced by its value
    (a literal reference by its conditional form, a transaction's ``urn:uuid`` by the id the server gave
    it or by what a conditional create matched)."""
    if isinstance(node, dict):
        out = {k: replace_references(v, mapping) for k, v in node.items()}
        if isinstance(node.get("reference"), str) and node["reference"] in mapping:
            out["reference"] = mapping[node["reference"]]
        return out
    if isinstance(node, list):
        return [replace_references(v, mapping) for v in node]
    return node
