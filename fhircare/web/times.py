"""Times as the coordinator reads them: in the console's zone (``FHIRCARE_TIMEZONE``, UTC when unset),
to the minute, with the zone's name beside them; a date alone stays a date."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .api import settings
from .pages import pages


def known_zone(name: str) -> bool:
    """Whether ``name`` is an IANA time zone this machine knows."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def zone() -> ZoneInfo:
    """The console's zone (checked when the app is made: an unknown name refuses to start)."""
    return ZoneInfo(settings().timezone or "UTC")


@pages.app_template_global()
def zone_name() -> str:
    return settings().timezone or "UTC"


@pages.app_template_filter("when")
def when(value: object) -> str:
    """``2026-12-07T14:05:00Z`` -> ``2026-12-07 15:05 CET`` (the zone's abbreviation, else its name)."""
    text = str(value or "")
    if len(text) <= 10 or "T" not in text:
        return text
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return text
    if moment.tzinfo is None:
        return moment.strftime("%Y-%m-%d %H:%M")
    local = moment.astimezone(zone())
    label = local.tzname() or str(zone())
    return f"{local:%Y-%m-%d %H:%M} {label}"
