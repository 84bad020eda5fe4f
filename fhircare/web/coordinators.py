"""Who is using the console: the coordinator chosen in development mode (SMART sessions are their
``fhirUser``), the coordinators the header and the reassign pickers offer, and what the last form wrote."""

from __future__ import annotations

from flask import g, redirect, request, session, url_for
from werkzeug.wrappers import Response

from ..errors import FhircareError
from .actions import me
from .csrf import check_csrf
from .fhir_access import access
from .pages import pages
from .pickers import search_choices


@pages.post("/me")
def choose_me() -> Response:
    """Development mode: which coordinator is using the page (SMART sessions are their fhirUser)."""
    check_csrf()
    chosen = request.form.get("me", "")
    if chosen.startswith(("Practitioner/", "PractitionerRole/")) or chosen == "":
        session["me"] = chosen
    return redirect(url_for("pages.worklist_page", tab="mine"), code=303)


@pages.app_template_global()
def take_written() -> list[str]:
    written = session.pop("written", None)
    return [str(w) for w in written] if isinstance(written, list) else []


@pages.app_template_global()
def coordinator_choices() -> list[dict[str, str]]:
    """The practitioners the header and the reassign pickers offer; the current one always among them."""
    cached = g.get("fhircare_coordinators")
    if cached is not None:
        return list(cached)
    try:
        choices = search_choices(access().view_client(), "Practitioner")
    except FhircareError as exc:  # e.g. a token without Practitioner read: the picker stays empty
        if exc.status == 401:
            raise
        choices = []
    g.fhircare_coordinators = choices
    current = me()
    if current and current.startswith("Practitioner/") and current not in {c["reference"] for c in choices}:
        from .context import name_of, read_all

        found = read_all(access().view_client(), {current}).get(current)
        if found:
            choices.insert(0, {"reference": current, "label": name_of(found)})
    return choices


@pages.app_template_global()
def current_coordinator() -> str | None:
    return me()
