"""The one place fhircare reads the time of day.

Every workflow, view, gap rule and the demo ask :func:`now` (or :func:`today`) instead of calling
``datetime.now()`` themselves, so that a test, a replay or a deployment can run the whole product at
another date: :func:`set_clock` installs any zero-argument callable that returns an aware datetime, and
:func:`frozen` does so for a ``with`` block. ``FHIRCARE_CLOCK_OFFSET`` (ISO 8601 duration-ish ``+400d``,
``-3h``, ``+10y`` or plain seconds) shifts the default clock for a whole process, which is how the CLI
and the sidecar run under a moved clock when no ``faketime`` is at hand.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta

Clock = Callable[[], datetime]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}
_OFFSET = re.compile(r"^\s*([+-]?)(\d+(?:\.\d+)?)\s*([smhdwy]?)\s*$")


def parse_offset(text: str) -> timedelta:
    """``+400d``, ``-3h``, ``10y`` (365-day years), ``90`` (seconds) -> a timedelta; ValueError otherwise."""
    match = _OFFSET.match(text)
    if not match:
        raise ValueError(f"clock offset {text!r}: expected a signed number with s, m, h, d, w or y")
    sign, number, unit = match.groups()
    seconds = float(number) * _UNITS[unit or "s"]
    return timedelta(seconds=-seconds if sign == "-" else seconds)


def system_clock() -> datetime:
    """The machine's time in UTC."""
    return datetime.now(UTC)


_clock: Clock = system_clock


def now() -> datetime:
    """The current moment, timezone-aware (UTC unless the installed clock says otherwise)."""
    moment = _clock()
    if moment.tzinfo is None:
        raise ValueError("the installed clock returned a naive datetime; fhircare needs an aware one")
    return moment


def today() -> date:
    """Today's date in UTC, from :func:`now`."""
    return now().astimezone(UTC).date()


def set_clock(clock: Clock | None) -> Clock:
    """Install ``clock`` (None: the system clock again); returns the one it replaces."""
    global _clock
    previous, _clock = _clock, (clock or system_clock)
    return previous


@contextmanager
def frozen(moment: datetime) -> Iterator[datetime]:
    """Within the block, :func:`now` is ``moment`` (aware)."""
    if moment.tzinfo is None:
        raise ValueError("frozen() needs an aware datetime")
    previous = set_clock(lambda: moment)
    try:
        yield moment
    finally:
        set_clock(previous)


@contextmanager
def shifted(offset: timedelta | str) -> Iterator[timedelta]:
    """Within the block, :func:`now` runs with the machine's clock, moved by ``offset``."""
    delta = parse_offset(offset) if isinstance(offset, str) else offset
    previous = set_clock(lambda: system_clock() + delta)
    try:
        yield delta
    finally:
        set_clock(previous)
