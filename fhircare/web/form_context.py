"""What a workflow form knows beyond its schema: the names of prefilled references its pickers do not
list, the task statuses that are legal from where the task stands, dates in the past to confirm."""

from __future__ import annotations

from datetime import datetime, timedelta
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


#: how long before the appointment a ride picks up, when the form proposes the time
PICK_UP_AHEAD = timedelta(minutes=45)
#: a pick-up further ahead of the appointment than this is asked about
TOO_EARLY = timedelta(hours=6)


def _instant(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else None


def ride_time(patient: str, appointment: str) -> str | None:
    """The pick-up the ride form proposes: 45 minutes before the appointment, in the console's zone."""
    from ..views.rides import ride_context
    from .times import zone

    start = _instant(ride_context(access().view_client(), patient, appointment).appointment_start or "")
    return (start - PICK_UP_AHEAD).astimezone(zone()).strftime("%Y-%m-%dT%H:%M") if start else None


def ride_questions(patient: str, payload: dict[str, Any]) -> dict[str, str]:
    """What to ask before a ride is sent: a ride to the same appointment already arranged; a pick-up
    after the appointment starts or hours before it."""
    from ..views.rides import ride_context
    from .times import when

    appointment, pick_up = payload.get("appointment"), _instant(str(payload.get("when") or ""))
    if not isinstance(appointment, str) or appointment.count("/") != 1:
        return {}
    context = ride_context(access().view_client(), patient, appointment)
    asks: dict[str, str] = {}
    if context.rides:
        times = ", ".join(when(t) for _, t in context.rides if t) or "no time given"
        asks["appointment"] = (
            f"A ride to this appointment is already arranged (pick-up {times}). A second one?"
        )
    start = _instant(context.appointment_start or "")
    if start and pick_up and pick_up >= start:
        asks["when"] = (
            f"The pick-up is not before the appointment, which starts {when(context.appointment_start)}."
        )
    elif start and pick_up and start - pick_up > TOO_EARLY:
        hours = int((start - pick_up).total_seconds() // 3600)
        ahead = f"{hours // 24} days" if hours >= 48 else f"{hours} hours"
        asks["when"] = f"The pick-up is {ahead} before the appointment ({when(context.appointment_start)})."
    return asks


#: fields whose picker offers first the organizations that played that role: (group label, finder)
ROLE_FIELDS = {"payer": "Payers on file", "payor": "Payers on file", "vendor": "Ride vendors on file"}


def role_first(name: str, rows: list[dict[str, str]]) -> list[dict[str, str]]:
    """A picker's rows with those that played the field's role first, each row given its group."""
    group = ROLE_FIELDS.get(name.rsplit(".", 1)[-1])
    if not group or not rows:
        return rows
    from flask import g

    from ..errors import FhircareError
    from ..views.roles import payers, ride_vendors
    from ..workflows import mappings_for
    from .api import settings

    cache = g.setdefault("fhircare_roles", {})
    if group not in cache:
        client = access().view_client()
        try:
            if group.startswith("Payers"):
                cache[group] = payers(client)
            else:
                ride = mappings_for(settings()).codes.get("services", {}).get("transportation") or {}
                cache[group] = ride_vendors(client, str(ride.get("system")), str(ride.get("code")))
        except FhircareError as exc:  # a token that may not search these: plain, ungrouped picker
            if exc.status == 401:
                raise
            cache[group] = set()
    known = cache[group]
    if not known:
        return rows
    rows = rows + _unlisted(known, rows)
    first = [{**r, "group": group} for r in rows if r["reference"] in known]
    rest = [{**r, "group": "Other organizations"} for r in rows if r["reference"] not in known]
    return first + rest if first else rows


def _unlisted(known: set[str], rows: list[dict[str, str]]) -> list[dict[str, str]]:
    """Rows for organizations that played the role but are not among the picker's rows (a picker
    lists the server's first organizations, and a busy server has more): read in one batch."""
    from .pickers import LIMIT, label_of

    listed = {r["reference"] for r in rows}
    missing = sorted(r for r in known if r not in listed)[:LIMIT]
    if not missing:
        return []
    found = access().view_client().read_found(missing)
    return sorted(
        ({"reference": ref, "label": label_of(res, {})} for ref, res in found.items()),
        key=lambda r: r["label"].lower(),
    )


def one_per_person(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    """Each person once: a role held by a practitioner the picker also lists is folded into that
    practitioner's row (its label gains the role), so "Jordan Rivera" is not offered twice."""
    rows = [dict(r) for r in rows]  # the rows are shared by every picker of the page: never changed
    people = {r["reference"]: r for r in rows if r["reference"].startswith("Practitioner/")}
    kept: list[dict[str, str]] = []
    for row in rows:
        person = people.get(row.get("person", ""))
        if person is None:
            kept.append(row)
            continue
        role = row["label"].rsplit(" (", 1)[-1].rstrip(")") if row["label"].endswith(")") else ""
        if role and role not in person["label"]:
            person["label"] = f"{person['label']} ({role})"
    return kept
