"""Named transforms a mapping can call with ``{$fn: name, args: [...]}``: the few steps that need code."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

Transform = Callable[..., Any]


def parse_datetime(value: str) -> datetime:
    """An ISO 8601 date or dateTime; a date means its start, times without zone are UTC."""
    text = value.strip().replace("Z", "+00:00")
    parsed = (
        datetime.fromisoformat(text)
        if "T" in text
        else datetime.combine(date.fromisoformat(text), datetime.min.time())
    )
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _add_minutes(value: str | None, minutes: int | str | None) -> str | None:
    if not value or minutes is None:
        return None
    return iso(parse_datetime(value) + timedelta(minutes=int(minutes)))


def _add_days(value: str | None, days: int | str | None) -> str | None:
    if not value or days is None:
        return None
    if "T" not in value:
        return (date.fromisoformat(value) + timedelta(days=int(days))).isoformat()
    return iso(parse_datetime(value) + timedelta(days=int(days)))


def _end_of_day(value: str | None) -> str | None:
    """A date becomes the last second of that day (UTC): a due date is due all day."""
    if not value:
        return None
    if "T" in value:
        return iso(parse_datetime(value))
    return f"{value}T23:59:59Z"


def _reference_type(value: str | None) -> str | None:
    return value.split("/", 1)[0].split("?", 1)[0] if value else None


def _first(*values: Any) -> Any:
    return next((v for v in values if v not in (None, "", [], {})), None)


def _text_of(value: Any) -> str | None:
    """Text of a code given as ``{system, code, display}``, a table key, or plain text."""
    if value is None:
        return None
    if isinstance(value, dict):
        return value.get("display") or value.get("text") or value.get("code")
    return str(value)


def _join(separator: str, *values: Any) -> str | None:
    parts = [str(v) for v in values if v not in (None, "")]
    return separator.join(parts) or None


def _date_of(value: str | None) -> str | None:
    return value[:10] if value else None


def _is_type(value: str | None, *types: str) -> bool:
    return _reference_type(value) in types


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _human_name(value: Any) -> dict[str, Any] | None:
    """A HumanName from ``{given, family}`` or one string ("Jo Rivera": the last word is the family)."""
    if isinstance(value, dict):
        return {k: value[k] for k in ("family", "given") if value.get(k)} or None
    if isinstance(value, str) and value.strip():
        *given, family = value.split()
        return {"family": family, **({"given": given} if given else {})}
    return None


TRANSFORMS: dict[str, Transform] = {
    "human_name": _human_name,
    "is_bool": _is_bool,
    "is_int": _is_int,
    "add_minutes": _add_minutes,
    "add_days": _add_days,
    "end_of_day": _end_of_day,
    "reference_type": _reference_type,
    "first": _first,
    "text_of": _text_of,
    "join": _join,
    "date_of": _date_of,
    "is_type": _is_type,
}
