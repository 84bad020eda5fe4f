"""Who is using the console: the coordinator chosen in development mode (SMART sessions are their
``fhirUser``), the coordinators the header and the reassign pickers offer, and what the last form wrote.

The header lists the first page of practitioners; anyone else is found by name on ``GET /me`` (the
header's name field submits there; with script it also narrows the list as one types), a page of
matches at a time, each a button, so a server with any number of practitioners reaches them all."""

from __future__ import annotations

from flask import abort, g, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response

from ..errors import FhircareError
from .actions import me
from .api import settings
from .csrf import check_csrf
from .fhir_access import access
from .pages import pages
from .pickers import find_practitioners, search_choices


@pages.route("/me", methods=["GET", "POST"])
def choose_me() -> Response | str:
    """Development mode: which coordinator is using the page (SMART sessions are their fhirUser).
    ``GET`` finds them by name among any number of practitioners, a page at a time (one endpoint, so
    one policy: reading practitioners); ``POST`` chooses. In every other mode there is no such choice
    (404, nothing searched, nothing kept): who acts is the token's user or the caller (actors.py)."""
    if not development_mode():
        abort(404)
    if request.method == "GET":
        return _find_me()
    check_csrf()
    chosen = request.form.get("me", "")
    if chosen.startswith(("Practitioner/", "PractitionerRole/")) or chosen == "":
        session["me"] = chosen
    return redirect(url_for("pages.worklist_page", tab="mine"), code=303)


def _find_me() -> str:
    name = request.args.get("q", "").strip()[:100]
    page = request.args.get("page", "1")
    number = int(page) if page.isdigit() and 0 < len(page) < 5 else 1
    try:
        people, more = find_practitioners(access().view_client(), name, number)
    except FhircareError as exc:
        if exc.status == 401:
            raise
        people, more = [], False
    return render_template("who.html", q=name, people=people, more=more, page=number, me=me())


@pages.app_template_global()
def development_mode() -> bool:
    """Development mode (no authentication: ``FHIRCARE_AUTH_MODE`` none), the only one with "I am"."""
    return settings().auth_mode == "none"


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
def picker_role(name: str) -> str | None:
    """The role a form field asks an organization to play (``payer``, ``vendor``), if any."""
    from .form_context import role_of

    return role_of(name)


@pages.app_template_global()
def picker_role_words(name: str) -> str:
    from .form_context import ROLE_WORDS, role_of

    return ROLE_WORDS.get(role_of(name) or "", "")


@pages.app_template_global()
def current_coordinator() -> str | None:
    return me()
