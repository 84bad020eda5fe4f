"""Finding a patient from every page (the header's box and the search page), and the cards that tell two
patients of the same name apart (birth date, age, record number) wherever a page names a patient."""

from __future__ import annotations

import re
from collections.abc import Iterable

from flask import render_template, request

from ..errors import FhircareError
from ..views.patients import PatientCard, PatientMatches, find_patients, patient_cards
from .api import settings
from .fhir_access import access, patient_in_context
from .field_messages import field_errors_in_words
from .pages import pages

DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def split_query(text: str) -> dict[str, str]:
    """The header's one box: a date is the birth date, a word with a digit the record number, the rest
    the name (``Ana Okafor 1961-04-02``)."""
    words = text.split()
    dates = [w for w in words if DATE.match(w)]
    numbers = [w for w in words if w not in dates and any(c.isdigit() for c in w)]
    names = [w for w in words if w not in dates and w not in numbers]
    return {
        "name": " ".join(names),
        "birthdate": dates[0] if dates else "",
        "identifier": numbers[0] if numbers else "",
    }


def cards_for(references: Iterable[str | None]) -> dict[str, PatientCard]:
    """The cards of the patients a page names (one batch); none where the caller may not read them."""
    try:
        return patient_cards(access().view_client(), references, settings().namespaces())
    except FhircareError as exc:
        if exc.status == 401:
            raise
        return {}


@pages.app_template_global()
def patient_search_offered() -> bool:
    """The header's search: for coordinators (a patient session sees only its own patient)."""
    return patient_in_context() is None


@pages.get("/patients")
def patients_page() -> tuple[str, int] | str:
    criteria = {k: (request.args.get(k) or "").strip()[:100] for k in ("name", "birthdate", "identifier")}
    if request.args.get("q") and not any(criteria.values()):
        criteria = split_query(request.args["q"][:200])
    page_text = request.args.get("page") or "1"
    page = int(page_text) if page_text.isdigit() and len(page_text) < 5 else 1
    asked = any(criteria.values())
    matches = PatientMatches([], page, False)
    errors: dict[str, list[str]] = {}
    general: list[str] = []
    if asked:
        try:
            matches = find_patients(
                access().view_client(),
                criteria["name"],
                criteria["birthdate"],
                criteria["identifier"],
                page=page,
                namespaces=settings().namespaces(),
            )
        except FhircareError as exc:
            if exc.status in (401, 403):
                raise
            errors, general = field_errors_in_words(exc, "", shown={"name", "birthdate", "identifier"})
            general = general or ([] if errors else [exc.message])
    html = render_template(
        "patients.html",
        criteria=criteria,
        asked=asked,
        matches=matches,
        errors=errors,
        general=general,
        query=request.args.get("q", ""),
    )
    return (html, 422) if errors or general else html
