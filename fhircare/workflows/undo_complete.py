"""undo-complete: take back a task's completion made by mistake, within a short window.

R4's Task state machine has no way out of ``completed``. For ``Settings.undo_window_minutes`` (10 by
default) after a completion, and only while nothing has changed the Task since, the completion can be
undone: the Task gets back the version before it (its status, reason, progress, execution period and
outputs: the completion's outcome output is withdrawn), keeps every note (notes are append-only) and
gets one more, saying the completion was undone, and a referral's ServiceRequest the completion
closed is active again. One transaction, If-Match on every resource, one Provenance (reason
"undo completion", agent the coordinator). Any coordinator allowed to update Tasks may undo, not only
the one who completed: the Provenance says who did each.

Refused, with nothing written: after the window; when the Task changed since the completion (or is
not at the ``version`` the caller saw); when the Task was sent to a partner organization, or is owned by
one (the light pattern: the partner's staff set its status on our server): the partner's status owns it. The reads are one batch: the Task and its focus, the Task's history (the version
before the completion) and the Provenance that targets it (what the completion changed).

Not to be confused with :mod:`.undo`, which takes back what a non-atomic server applied of a failed run.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from ..care.task_states import check_undo
from ..errors import Conflict, Issue, UnresolvedReference
from ..fhir.entries import MISSING, REFUSED, entry_error, failure_kind
from ..mapping import PlannedEntry
from ..mapping.transforms import iso
from ..settings import Settings
from .base import RunState, Workflow, update_entry
from .partners_file import partner_organizations
from .task_transition import task_query

#: Provenance.reason of every undo (R4 Provenance.reason, text: no code system says "undo")
REASON = "undo completion"
#: the window when no settings say otherwise (Settings.undo_window_minutes)
DEFAULT_WINDOW = timedelta(minutes=Settings.undo_window_minutes)


class UndoCompletion(Workflow):
    name = "undo-complete"
    description = (
        "Undo a task's completion made by mistake, within the undo window: the status before it, the "
        "outcome withdrawn, the referral active again"
    )
    updates_types = ("Task", "ServiceRequest")
    window = DEFAULT_WINDOW
    #: the Organizations that stand for partners (FHIRCARE_PARTNERS): a Task one of them owns is theirs
    partners: frozenset[str] = frozenset()

    def configure(self, settings: Settings) -> None:
        self.window = timedelta(minutes=settings.undo_window_minutes)
        self.partners = partner_organizations(settings)

    def check(self, payload: dict[str, Any], now: datetime | None = None) -> list[Issue]:
        if "?" in str(payload.get("task", "")):
            text = "name the task by its id (Task/<id>): undoing reads that task's own history"
            return [Issue("error", "value", text, ("$.task",))]
        return super().check(payload, now)

    def reads(self, payload: dict[str, Any]) -> list[str]:
        task = str(payload["task"])
        provenance = urlencode({"target": task, "_count": "100"})
        return [task_query(task), f"{task}/_history", f"Provenance?{provenance}"]

    def actor(self, payload: dict[str, Any]) -> str | None:
        value = payload.get("actor")
        return str(value) if value else None

    def patient(self, payload: dict[str, Any]) -> str | None:
        return None  # the Task's own, set in updates()

    def _collect(self, state: RunState, reference: str, result: dict[str, Any]) -> None:
        """The history's versions as ``Task/id/_history/vid`` (newest first, as the server lists them);
        the Provenances that target the Task (none when nothing of fhircare's wrote it); the rest as usual."""
        if not reference.endswith("/_history") and not reference.startswith("Provenance?"):
            super()._collect(state, reference, result)
            return
        if failure_kind(result) not in (None, MISSING, REFUSED):
            raise entry_error(f"reading {reference.split('/')[0].split('?')[0]}", result)
        bundle = result.get("resource") or {}
        if reference.endswith("/_history") and bundle.get("resourceType") != "Bundle":
            raise UnresolvedReference(f"{reference.rsplit('/', 1)[0]} could not be read with its history")
        for entry in bundle.get("entry") or []:
            found = entry.get("resource") if isinstance(entry, dict) else None
            if not isinstance(found, dict) or found.get("resourceType") == "OperationOutcome":
                continue
            if reference.endswith("/_history"):
                version = (found.get("meta") or {}).get("versionId")
                state.found.setdefault(f"{reference}/{version}", found)
            else:
                state.found[f"Provenance/{found['id']}"] = found

    def updates(self, state: RunState, created: dict[str, PlannedEntry]) -> list[PlannedEntry]:
        reference = str(state.payload["task"])
        current = state.resource(reference)
        before = version_before(current, _versions(state, reference))
        check_undo(current, before, state.now, self.window, state.payload.get("version"), self.partners)
        assert before is not None  # check_undo refuses a Task with no version before its completion
        task = {k: v for k, v in before.items() if k != "meta"}
        task["meta"] = current.get("meta") or {}  # If-Match on the completed version; its profiles
        stamp = iso(state.now)
        note = f"Completion undone: back to {before.get('status')}; the outcome recorded with it no longer stands."
        if state.payload.get("reason"):
            note += f" Why: {state.payload['reason']}"
        actor = self.actor(state.payload)
        signed = {"authorReference": {"reference": actor}} if actor else {}
        # notes are append-only: the completion's stay, and this one says they no longer stand
        task["note"] = [*(current.get("note") or []), {"text": note, "time": stamp, **signed}]
        task["lastModified"] = stamp
        entries = [update_entry(task, "task")]
        request = _closed_request(state, current, _completions(state, current))
        if request is not None:
            entries.append(update_entry({**request, "status": "active"}, "service_request"))
        patient = (current.get("for") or {}).get("reference")
        if isinstance(patient, str) and patient.startswith("Patient/"):
            state.patient = patient
        return entries

    def _provenance(self, state: RunState, *args: Any, **kwargs: Any) -> PlannedEntry:
        entry = super()._provenance(state, *args, **kwargs)
        entry.resource["reason"] = [{"text": REASON}]
        return entry


def _completions(state: RunState, task: dict[str, Any]) -> list[dict[str, Any]]:
    """The Provenance of the Task's completion: recorded when the completing run stamped the Task."""
    stamp = task.get("lastModified")
    return [
        p
        for key, p in state.found.items()
        if key.startswith("Provenance/") and stamp and p.get("recorded") == stamp
    ]


def _closed_request(
    state: RunState, task: dict[str, Any], completions: list[dict[str, Any]]
) -> dict[str, Any] | None:
    """The referral's ServiceRequest the completion closed: named by the completion's Provenance and
    still completed. A Task completed outside fhircare has no such Provenance: then its fulfilment
    Task's completed ServiceRequest."""
    focus = (task.get("focus") or {}).get("reference")
    if not isinstance(focus, str) or not focus.startswith("ServiceRequest/"):
        return None
    request = state.found.get(focus)
    if request is None or request.get("status") != "completed":
        return None
    if completions:
        targets = {str(t.get("reference")) for p in completions for t in p.get("target") or []}
        return request if focus in targets else None
    codes = {c.get("code") for c in (task.get("code") or {}).get("coding") or [] if isinstance(c, dict)}
    return request if "fulfill" in codes else None


def _versions(state: RunState, reference: str) -> list[dict[str, Any]]:
    prefix = f"{reference}/_history/"
    return [resource for key, resource in state.found.items() if key.startswith(prefix)]


def version_before(current: dict[str, Any], versions: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The version just before ``current`` in ``versions`` (a history, newest first as servers list it;
    equal times keep that order); None when ``current`` is the first. Conflict when the history does
    not hold ``current`` as its newest version (a change landed between the reads)."""
    ordered = sorted(
        versions, key=lambda r: str((r.get("meta") or {}).get("lastUpdated") or ""), reverse=True
    )
    newest = str((current.get("meta") or {}).get("versionId") or "")
    if not ordered or str((ordered[0].get("meta") or {}).get("versionId")) != newest:
        raise Conflict("the Task changed while its history was read; nothing was written, try again")
    return ordered[1] if len(ordered) > 1 else None
