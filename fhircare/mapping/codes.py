"""Codes in mappings: a payload's code as a Coding or CodeableConcept, from ``{system, code, display}``,
a key of a code table (``mappings/codes/``), or free text where the mapping allows it."""

from __future__ import annotations

import difflib
from typing import Any

from ..errors import ConfigurationError, Issue, PayloadError


def coding(
    value: Any, table: str | None, tables: dict[str, dict[str, Any]], where: str
) -> dict[str, Any] | None:
    if value is None:
        return None
    if isinstance(value, dict):
        if value.get("code") is None:
            return None
        return {k: value[k] for k in ("system", "code", "display") if value.get(k)}
    if table is not None:
        codes = tables.get(table)
        if codes is None:
            raise ConfigurationError(f"{where}: unknown code table {table!r}")
        found = codes.get(str(value))
        if found is None:
            raise PayloadError(
                "unknown code",
                [
                    Issue(
                        "error",
                        "code-invalid",
                        f"unknown code {value!r} in {table}{_did_you_mean(str(value), codes)}; "
                        f"known: {', '.join(sorted(codes))}",
                        (where,),
                    )
                ],
            )
        return {k: found[k] for k in ("system", "code", "display") if found.get(k)}
    return None


def _did_you_mean(value: str, codes: dict[str, Any]) -> str:
    close = difflib.get_close_matches(value, list(codes), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def codeable(
    value: Any, node: dict[str, Any], tables: dict[str, dict[str, Any]], where: str
) -> dict[str, Any] | None:
    """A CodeableConcept. Free text is accepted only where the mapping says ``text_ok: true``."""
    table = node.get("table")
    if value is None:
        return None
    if isinstance(value, dict) and not value.get("code"):
        return {"text": str(value["text"])} if value.get("text") else None
    if isinstance(value, str) and (
        table is None or (node.get("text_ok") and value not in tables.get(table, {}))
    ):
        return {"text": value}
    found = coding(value, table, tables, where)
    if found is None:
        return None
    out: dict[str, Any] = {"coding": [found]}
    text = value.get("text") if isinstance(value, dict) else None
    if text or found.get("display"):
        out["text"] = text or found["display"]
    return out


def code_text(value: Any, table: str | None, tables: dict[str, dict[str, Any]]) -> str | None:
    """Human text of a code given as an object, a table key or free text."""
    if value is None:
        return None
    if isinstance(value, dict):
        return str(value.get("display") or value.get("text") or value.get("code") or "") or None
    found = (tables.get(table) or {}).get(str(value)) if table else None
    return str(found.get("display") or found["code"]) if found else str(value)
