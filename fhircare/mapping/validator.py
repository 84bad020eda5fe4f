"""One validator per schema: jsonschema's, behind a compiled one (``jsonschema-rs``) that only ever
says "valid"."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
from referencing import Registry

try:  # a compiled validator (Rust) answers "valid?" in microseconds; jsonschema stays the authority
    import jsonschema_rs
except ImportError:  # pragma: no cover - a platform without its wheel: jsonschema alone
    jsonschema_rs = None  # type: ignore[assignment]

from ..caching import IdentityCache
from .inlining import inlined

__all__ = ["compiled_validator", "jsonschema_rs"]

#: one validator per (schema, registry): both come from the caches above and live as long as the process
_validators: IdentityCache[_Validator] = IdentityCache(limit=256)

# What the compiled validator accepts and jsonschema refuses, as it appears in a document's JSON:
# characters Python's ``\s`` (jsonschema's patterns) counts as white space and Rust's does not, and a
# date in year 0000 (``date.fromisoformat`` refuses it). A document holding one is checked by
# jsonschema alone.
_DIALECT_GAPS = ("\\u001", "\\u0085", '"0000-')


class _Validator:
    """jsonschema's validator for a schema, behind a compiled one that only ever says "valid".

    Only a document the compiled validator (``jsonschema-rs``) accepts skips jsonschema; anything it
    rejects, or cannot take (lone surrogates, huge numbers), is checked by jsonschema, whose issues are
    what a caller sees. Where the two disagree the stricter side is the compiled one's pattern dialect
    (``\\d``, ``$``), so the fast path never lets through what jsonschema would refuse; documents with
    the few characters where Python's ``\\s`` is wider are never given to it
    (``tests/unit/test_payload_fast_path.py`` holds the two to the same answers).
    """

    def __init__(self, schema: dict[str, Any], registry: Registry | None = None) -> None:
        """``registry``: where jsonschema resolves the references of a schema that could not be inlined."""
        self.slow = jsonschema.Draft202012Validator(
            schema,
            format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
            **({"registry": registry} if registry is not None else {}),
        )
        self.fast = _compiled(schema)

    def iter_errors(self, document: Any) -> Any:
        if self.fast is not None and self._fast_valid(document):
            return iter(())
        return self.slow.iter_errors(document)

    def _fast_valid(self, document: Any) -> bool:
        try:
            text = json.dumps(document, allow_nan=False)
        except (TypeError, ValueError):
            return False
        if any(gap in text for gap in _DIALECT_GAPS):
            return False
        loaded = json.loads(text)
        if loaded != document:  # not plain JSON (a tuple, a non-string key): jsonschema decides
            return False
        try:
            return bool(self.fast.is_valid(loaded))
        except Exception:
            return False


def _compiled(schema: dict[str, Any]) -> Any:
    """The compiled validator of a self-contained schema (every ``$ref`` inlined), else None."""
    if jsonschema_rs is None or '"$ref"' in json.dumps(schema):
        return None
    try:
        return jsonschema_rs.Draft202012Validator(schema, validate_formats=True)
    except Exception:
        return None


def compiled_validator(schema: dict[str, Any], registry: Registry) -> _Validator:
    """One validator per (schema, registry), made once."""
    return _validators.get((schema, registry), lambda: _new_validator(schema, registry))


def _new_validator(schema: dict[str, Any], registry: Registry) -> _Validator:
    full = inlined(schema, registry)
    if full is schema:  # not inlinable: jsonschema resolves its references through the registry
        return _Validator(schema, registry)
    return _Validator(full)
