"""*New patient*: the ``enroll`` workflow from a page of its own (identity, record number, family,
care team, first plan), with the same generated form, pickers and refusals as every workflow form. A
record number already on the server finds that patient instead of creating a second one."""

from __future__ import annotations

from typing import Any

from flask import redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response

from ..errors import FhircareError
from ..workflows import WORKFLOWS
from .actions import TITLES, code_options, me, table_keys
from .api import settings
from .csrf import check_csrf
from .fhir_access import access
from .field_messages import field_errors_in_words
from .forms import Field, flatten, form_fields, payload_from_form
from .intents import mark_done, request_id_for
from .pages import pages
from .pickers import KINDS, search_choices
from .runs import run_workflow
from .times import zone

TITLE = "New patient"


def _fields() -> list[Field]:
    return form_fields(settings().profiles_dir / "workflows", "enroll")


def _render(values: dict[str, str], errors: dict[str, list[str]], general: list[str]) -> str:
    fields = _fields()
    client = access().view_client()
    wanted = {kind for f in flatten(fields) if f.kind == "ref" for kind in f.picks if kind in KINDS}
    shared = {kind: search_choices(client, kind) for kind in sorted(wanted)}

    def options(f: Field) -> list[dict[str, str]]:
        return [row for kind in f.picks for row in shared.get(kind, [])]

    return render_template(
        "action.html",
        workflow="enroll",
        title=TITLE,
        description=WORKFLOWS["enroll"].description,
        patient_id=None,
        patient_name="",
        card=None,
        fields=fields,
        values=values,
        errors=errors,
        general=general,
        request_id=request.form.get("request_id")
        or request_id_for("enroll|new", fresh=request.method == "GET"),
        form_action=url_for("pages.new_patient_run"),
        options=options,
        codes=code_options,
    )


@pages.get("/patients/new")
def new_patient_form() -> str:
    values = {"patient.identifier.system": settings().namespaces().system("demo-mrn")}
    coordinator = me()
    if coordinator:
        values["coordinator"] = coordinator
    return _render(values, {}, [])


@pages.post("/patients/new")
def new_patient_run() -> Response | tuple[str, int]:
    check_csrf()
    fields = _fields()
    payload: dict[str, Any] = payload_from_form(fields, request.form, table_keys, zone())
    payload["request_id"] = request.form.get("request_id") or request_id_for("enroll|new")
    try:
        result = run_workflow("enroll", payload)
    except FhircareError as exc:
        if exc.status in (401, 403):
            raise
        shown = {f.name for f in flatten(fields)}
        errors, general = field_errors_in_words(exc, "enroll", shown)
        marked = sum(len(v) for v in errors.values())
        headline = "Not done: the new patient was not enrolled." + (
            f" {marked} field{'s' if marked != 1 else ''} marked below." if marked else ""
        )
        values = {k: v for k, v in request.form.items() if k != "csrf"}
        return _render(values, errors, [headline, *general]), 422
    mark_done(payload["request_id"])
    patient = next((r for r in result.written if r.startswith("Patient/")), None)
    name = payload.get("patient", {}).get("name", {})
    who = " ".join([*name.get("given", []), name.get("family", "")]).strip() or "the patient"
    session["flash"] = f"{TITLES['enroll']}: done for {who}" + (" (already done)" if result.repeated else "")
    session["written"] = [ref for ref in result.written if not ref.startswith("Provenance/")]
    if patient is None:
        return redirect(url_for("pages.patients_page"), code=303)
    return redirect(url_for("pages.summary_page", patient_id=patient.split("/", 1)[1]), code=303)
