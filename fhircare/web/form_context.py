"""What a workflow form knows beyond its schema: the names of prefilled references its pickers do not
list, the organizations a payer or vendor picker offers, the task statuses that are legal from where the
task stands, dates in the past to confirm."""

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


#: fields whose picker offers only the organizations able to play a role: field name -> role
ROLE_FIELDS = {"payer": "payer", "payor": "payer", "vendor": "vendor"}
#: how a role is named on the page
ROLE_WORDS = {"payer": "a payer", "vendor": "a transport vendor"}


def role_of(name: str) -> str | None:
    """The role the field ``name`` asks an organization to play (``payer``, ``vendor``), if any."""
    return ROLE_FIELDS.get(name.rsplit(".", 1)[-1])


def role_first(name: str, rows: list[dict[str, str]]) -> list[dict[str, str]]:
    """A role field's picker: the organizations able to play the role (``pickers.role_organizations``:
    typed so, or seen in the role on the server), then the picker's other organizations marked
    ``other`` (the page offers those apart, as the way out for an organization not typed yet). Any
    other field's rows unchanged; a caller that may not search roles gets the plain picker."""
    role = role_of(name)
    if role is None:
        return rows
    able = _able(role)
    if able is None:
        return rows
    listed = {r["reference"] for r in able}
    words = ROLE_WORDS[role]
    others = [
        {**r, "other": words}
        for r in rows
        if r["reference"] not in listed and r["reference"].startswith("Organization/")
    ]
    return [{**r, "role": words} for r in able] + others


def _able(role: str) -> list[dict[str, str]] | None:
    """The organizations able to play ``role``, once per page (None: these credentials may not ask)."""
    from flask import g

    from ..errors import FhircareError
    from ..workflows import mappings_for
    from .api import settings
    from .pickers import role_organizations

    cache = g.setdefault("fhircare_roles", {})
    if role not in cache:
        ride = mappings_for(settings()).codes.get("services", {}).get("transportation") or {}
        try:
            cache[role] = role_organizations(
                access().view_client(), role, (str(ride.get("system")), str(ride.get("code")))
            )
        except FhircareError as exc:
            if exc.status == 401:
                raise
            cache[role] = None
    found: list[dict[str, str]] | None = cache[role]
    return found


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
