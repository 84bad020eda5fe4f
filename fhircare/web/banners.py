"""The banner after a form: a success in green (role=status) naming the task or patient it was about, a
refusal in red (role=alert) in plain words, naming them too. A failure is never shown as a success.
After a completion, the banner offers to undo it while the undo window is open (the task's page)."""

from __future__ import annotations

from flask import session

from ..errors import FhircareError
from ..views.labels import concept_text
from .fhir_access import access
from .field_messages import field_errors_in_words
from .pages import pages
from .patient_pages import cards_for


def say_done(text: str) -> None:
    session["flash"] = text


def say_refused(text: str) -> None:
    session["problem"] = text


def offer_undo(text: str, task: str) -> None:
    """A success banner about ``task`` that offers to undo it (a completion): shown by the task's page."""
    session["undo_banner"] = {"text": text, "task": task}


def take_undo_banner(task: str) -> str | None:
    """The text of the undo-offering banner about ``task``, once (one about another task is dropped)."""
    held = session.pop("undo_banner", None)
    return str(held.get("text")) if isinstance(held, dict) and held.get("task") == task else None


@pages.app_template_global()
def take_problem() -> str | None:
    message = session.pop("problem", None)
    return str(message) if message else None


def task_subject(task: str) -> str:
    """``“Call about the referral” for Ana Okafor (born 1961-04-02)``: what a banner about a task names."""
    try:
        found = access().view_client().read_found([task]).get(task) or {}
    except FhircareError as exc:
        if exc.status == 401:
            raise
        found = {}
    what = str(found.get("description") or concept_text(found.get("code")) or "the task")
    patient = ((found.get("for") or {}).get("reference")) or ""
    card = cards_for([patient]).get(patient) if patient else None
    who = (
        f" for {card.name}" + (f" (born {card.birth_date})" if card and card.birth_date else "")
        if card
        else ""
    )
    return f"“{what}”{who}"


def reused_request_id(error: FhircareError) -> tuple[str, ...]:
    """``("request_id",)`` when ``error`` refuses the posted request id as another action's
    (workflows.repeats.same_action): the form is shown again with its own id, not that one."""
    named = any("$.request_id" in issue.expression for issue in error.issues)
    return ("request_id",) if named else ()


def refusal_words(error: FhircareError, workflow: str) -> str:
    """A refusal in one line of plain words (for a form with no field to mark)."""
    by_field, general = field_errors_in_words(error, workflow, shown=set())
    texts = [*general, *(m for messages in by_field.values() for m in messages)]
    return " ".join(dict.fromkeys(texts))
