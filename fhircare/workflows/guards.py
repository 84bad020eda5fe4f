"""Named guards: the rules a mapping cannot say as data, referred to by name from ``guards:`` in
``mappings/<workflow>.yaml``. Each takes the validated payload and returns issues naming JSON paths."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

from ..errors import Issue

FOLLOW_UP_WITHIN_DAYS = 7

Guard = Callable[[dict[str, Any]], list[Issue]]


def follow_up_within_7_days(payload: dict[str, Any]) -> list[Issue]:
    """A transition's follow-up is due within 7 days after discharge (transitional care practice)."""
    due = payload.get("follow_up_due")
    if not due:
        return []
    days = (date.fromisoformat(due) - date.fromisoformat(payload["discharge_date"])).days
    if 0 <= days <= FOLLOW_UP_WITHIN_DAYS:
        return []
    return [
        Issue(
            "error",
            "business-rule",
            f"the follow-up must be due within {FOLLOW_UP_WITHIN_DAYS} days after discharge_date (it is {days})",
            ("$.follow_up_due",),
        )
    ]


GUARDS: dict[str, Guard] = {"follow_up_within_7_days": follow_up_within_7_days}
