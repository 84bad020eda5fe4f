"""Dates for tests, from the product's one clock (``fhircare.clock``), never from the calendar.

A test that needs "a booking three days ahead" writes ``at(3, "10:00")``; one that needs "a due date
last week" writes ``day(-7)``. Under ``faketime`` (the shifted CI run) or ``clock.frozen(...)`` these
move with everything else, so no fixture expires on the day its date passes.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from fhircare import clock


def today() -> date:
    """The product's today (UTC)."""
    return clock.today()


def day(offset: int = 0, base: date | None = None) -> str:
    """The date ``offset`` days from today (or from ``base``), as FHIR writes a date."""
    return ((base or today()) + timedelta(days=offset)).isoformat()


def moment(offset: int = 0, hhmm: str = "10:00", base: date | None = None) -> datetime:
    """An aware UTC datetime ``offset`` days from today (or ``base``) at ``hhmm`` (or ``hh:mm:ss``)."""
    return datetime.combine((base or today()) + timedelta(days=offset), time.fromisoformat(hhmm), tzinfo=UTC)


def at(offset: int = 0, hhmm: str = "10:00", base: date | None = None) -> str:
    """``moment`` as FHIR writes an instant: ``YYYY-MM-DDTHH:MM:SSZ``."""
    return moment(offset, hhmm, base).strftime("%Y-%m-%dT%H:%M:%SZ")


def date_at(offset: int = 0, base: date | None = None) -> date:
    """The ``date`` ``offset`` days from today (or from ``base``)."""
    return (base or today()) + timedelta(days=offset)


def local(offset: int = 0, hhmm: str = "10:00", base: date | None = None) -> str:
    """What a browser's ``datetime-local`` field holds: ``YYYY-MM-DDTHH:MM``, no zone."""
    return moment(offset, hhmm, base).strftime("%Y-%m-%dT%H:%M")
