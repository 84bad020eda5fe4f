"""Which Task a page's address may name: every page route that names a Task (its page, a note, a status
change, Complete, Undo, the payer's decision, a workflow form run under a patient's address) checks it
here, before anything is written.

Under ``/patients/<id>/...`` the Task must be that patient's (``Task.for``); under ``/tasks/<id>`` it
must name no patient of ours (an administrative task, or a partner's referral whose patient lives on the
partner's server). Anything else answers 404 with a plain-language page, as the task page's own GET does:
nothing is read from the Task for the page, and nothing is written."""

from __future__ import annotations

from typing import Any, NoReturn

from flask import abort, render_template_string, url_for
from werkzeug.wrappers import Response

from ..errors import NotFound
from ..views.labels import reference_of
from .fhir_access import access, patient_in_context

NOT_HERE = """{% extends "base.html" %}
{% block title %}No such task{% endblock %}
{% block content %}
<h1>No such task here</h1>
<div class="problem" role="alert"><p>{{ text }}</p></div>
<p><a href="{{ back }}">{{ back_label }}</a></p>
{% endblock %}"""


def local_patient(for_reference: str | None) -> str | None:
    """The patient of ours a Task is for (``Patient/<id>``); None for no patient or one on another
    server (an absolute reference: a partner's patient)."""
    if for_reference and for_reference.startswith("Patient/") and for_reference.count("/") == 1:
        return for_reference
    return None


def address_patient(patient_id: str | None) -> str | None:
    """The patient the address names; a patient session's own when it names none (it has no other)."""
    return f"Patient/{patient_id}" if patient_id else patient_in_context()


def not_here(patient_id: str | None) -> NoReturn:
    """404 with a red banner in words; the page names neither the Task nor whose it is."""
    if patient_id:
        text = (
            "This patient has no such task: the address names a task of another patient, or none at all. "
            "Nothing was changed."
        )
        back, label = url_for("pages.summary_page", patient_id=patient_id), "Back to the patient's page"
    else:
        text = (
            "No such task without a patient: the address names a patient's task, or none at all. Open it "
            "from its patient's page. Nothing was changed."
        )
        back, label = url_for("pages.worklist_page"), "Back to the worklist"
    html = render_template_string(NOT_HERE, text=text, back=back, back_label=label)
    abort(Response(html, 404, mimetype="text/html"))


def check_task_patient(patient_id: str | None, for_reference: str | None) -> None:
    """404 (``not_here``) unless the Task's patient is the one the address names (none for none)."""
    if local_patient(for_reference) != address_patient(patient_id):
        not_here(patient_id)


def task_in_address(patient_id: str | None, task: str) -> dict[str, Any]:
    """The Task ``Task/<id>`` when the address may name it (one read), else 404 before any write."""
    if not task.startswith("Task/") or task.count("/") != 1:
        not_here(patient_id)
    try:
        found = access().view_client().read_reference(task)
    except NotFound:  # Gone too
        not_here(patient_id)
    if found.get("resourceType") != "Task":
        not_here(patient_id)
    check_task_patient(patient_id, reference_of(found.get("for")))
    return found


def tasks_named(payload: dict[str, Any]) -> list[str]:
    """The Tasks a workflow form's payload names at its top level (``task``, a follow-up's ``about``)."""
    return [
        value
        for value in payload.values()
        if isinstance(value, str) and value.startswith("Task/") and value.count("/") == 1
    ]
