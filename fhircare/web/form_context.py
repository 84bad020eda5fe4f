"""What a workflow form knows beyond its schema: the names of prefilled references its pickers do not
list, the task statuses that are legal from where the task stands, dates in the past to confirm."""

from __future__ import annotations

from typing import Any

from .. import clock
from .fhir_access import access
from .forms import Field, flatten


def label_strays(
    fields: list[Field], values: dict[str, str], own: dict[str, Any], shared: dict[str, list[dict[str, str]]]
) -> None:
    """A prefilled reference its picker does not list (beyond the first page of choices) joins the
    picker with its name (one batch for all of them)."""
    from .context import read_all
    from .pickers import label_of

    listed = {c["reference"] for rows in (*own.values(), *shared.values()) for c in rows}
    strays = {
        values[f.name]: f
        for f in flatten(fields)
        if f.kind == "ref" and values.get(f.name, "").count("/") == 1 and values[f.name] not in listed
    }
    found = read_all(access().view_client(), set(strays))
    related = read_all(
        access().view_client(),
        {
            ref
            for r in found.values()
            if (ref := ((r.get("practitioner") or r.get("providedBy") or {}).get("reference")))
        },
    )
    for ref, resource in found.items():
        kind = ref.split("/", 1)[0]
        shared.setdefault(kind, []).insert(0, {"reference": ref, "label": label_of(resource, related)})


def legal_statuses(fields: list[Field], task: str | None) -> None:
    """The task form offers the statuses the state machine allows from the task's own (all of them
    while no task is chosen)."""
    from ..care.task_states import TRANSITIONS
    from ..views.tasks import OFFERED_ORDER

    if not task or task.count("/") != 1:
        return
    found = access().view_client().read_found([task]).get(task)
    if found is None:
        return
    allowed = TRANSITIONS.get(str(found.get("status")), frozenset())
    for f in fields:
        if f.name == "to":
            f.options = tuple(s for s in OFFERED_ORDER if s in allowed)


#: date and time fields a coordinator means to be ahead of now (a due date, a booking, a ride)
AHEAD = ("due", "start", "when")


def past_dates(fields: list[Field], form: Any) -> list[str]:
    """The fields of ``AHEAD`` whose value lies before today (a date) or now (a time): asked to confirm."""
    from .times import zone

    today, now = clock.today().isoformat(), clock.now().astimezone(zone()).strftime("%Y-%m-%dT%H:%M")
    late = []
    for f in flatten(fields):
        value = str(form.get(f.name) or "").strip()
        if f.name.rsplit(".", 1)[-1] not in AHEAD or not value:
            continue
        if (f.kind == "date" and value < today) or (
            f.kind == "datetime" and value[:16] < now[: len(value[:16])]
        ):
            late.append(f.name)
    return late
