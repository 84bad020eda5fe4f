"""undo-complete: take back a task's completion made by mistake, within a short window.

R4's Task state machine has no way out of ``completed``. For ``Settings.undo_window_minutes`` (10 by
default) after a completion, and only while nothing has changed the Task since, the completion can be
undone: the Task gets back the version before it (its status, reason, progress, execution period and
outputs), keeps every note (notes are append-only) and gets one more, saying the completion was undone
and what that did. One transaction, If-Match on every resource, one Provenance (reason "undo
completion", agent the coordinator, target every resource changed). Any coordinator allowed to update
Tasks may undo, not only the one who completed: the Provenance says who did each.

The completion's own Provenance decides what it did: the Provenance of the fhircare run that revised
the version before the completion (its ``revision`` entity). Without one (the EHR, ``exchange work``),
nothing of fhircare's made the completion.
- The window starts at that Provenance's ``recorded`` (fhircare's clock, in the completion's own
  transaction), else at the server's ``meta.lastUpdated`` of the completing version; never at
  ``Task.lastModified``, which whoever writes the Task chooses.
- A referral's ServiceRequest is active again only when that Provenance targets it (this completion
  closed it); otherwise it stays completed and the note says so (another Task's completion, or the EHR,
  may have closed it: nothing shows which).
- Each resource the completion added as an output and wrote (that Provenance targets it; without one,
  the server wrote it with the completion, within ``SAME_WRITE``, and it has not changed since) is
  withdrawn: its ``status`` becomes entered-in-error (If-Match; never deleted). What it only named stays
  as it is, and the note says so, except a payer's own ClaimResponse: the payer's decision stands, and
  the undo is refused.

Refused, with nothing written: after the window; when the Task changed since the completion (or is
not at the ``version`` the caller saw); when the Task was sent to a partner organization, or is owned by
one (the light pattern: the partner's staff set its status on our server): the partner's status owns it;
when the completion recorded a ClaimResponse the payer wrote. The reads are one batch (the Task and its
focus, the Task's history, the Provenance that targets it) and, when needed, one more (the focus where
``_include`` is ignored, the outputs the completion added).

Not to be confused with :mod:`.undo`, which takes back what a non-atomic server applied of a failed run.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from ..care.task_states import check_undo, completion_provenance
from ..errors import Conflict, IllegalTransition, Issue, UnresolvedReference
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
#: outcomes an undone completion withdraws by marking ``status`` entered-in-error: those a completion
#: writes (``exchange work``: a Procedure; a decision taken by phone: a ClaimResponse; results: an
#: Observation). Another type it wrote is left as it is, and the note says so. The sidecar checks the
#: caller may update each of these types before an undo.
WITHDRAWN_BY_STATUS = frozenset({"Procedure", "Observation", "ClaimResponse"})
#: how far apart, by the server's clock, an outcome and the completion are still one transaction's writes
SAME_WRITE = timedelta(seconds=2)


class UndoCompletion(Workflow):
    name = "undo-complete"
    description = (
        "Undo a task's completion made by mistake, within the undo window: the status before it, the "
        "outcome withdrawn, the referral active again"
    )
    updates_types = ("Task", "ServiceRequest", *sorted(WITHDRAWN_BY_STATUS))
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

    def _complete_includes(self, state: RunState, reads: list[str]) -> None:
        """One more batch, only when needed: the focus a server that ignores ``_include`` did not
        bring, and the resources the completion added as outputs (to withdraw the ones it wrote)."""
        reference = str(state.payload["task"])
        current = state.found.get(reference) or {}
        focus = (current.get("focus") or {}).get("reference")
        wanted = (
            [focus] if isinstance(focus, str) and focus.count("/") == 1 and focus not in state.found else []
        )
        try:
            before = version_before(current, _versions(state, reference)) if current else None
        except Conflict:
            before = None  # updates() says so, with nothing written
        if current.get("status") == "completed" and before is not None:
            wanted += [r for r in added_outputs(current, before) if r not in state.found and r not in wanted]
        for ref, result in zip(wanted, self.client.read_batch(wanted), strict=False):
            if ref == focus:
                self._collect(state, ref, result)
            elif failure_kind(result) not in (None, MISSING):
                raise entry_error(f"reading {ref.split('/')[0]}", result)
            elif (
                isinstance(found := result.get("resource"), dict)
                and found.get("resourceType") == ref.split("/")[0]
            ):
                state.found[ref] = found  # gone: nothing to withdraw

    def updates(self, state: RunState, created: dict[str, PlannedEntry]) -> list[PlannedEntry]:
        reference = str(state.payload["task"])
        current = state.resource(reference)
        before = version_before(current, _versions(state, reference))
        provenances = [p for key, p in state.found.items() if key.startswith("Provenance/")]
        check_undo(
            current, before, state.now, self.window, state.payload.get("version"), self.partners, provenances
        )
        assert before is not None  # check_undo refuses a Task with no version before its completion
        run = completion_provenance(current, before, provenances)
        wrote = {_plain(t.get("reference")) for t in (run or {}).get("target") or [] if isinstance(t, dict)}
        outcomes, standing = _outcomes(state, current, before, wrote if run is not None else None)
        task = {k: v for k, v in before.items() if k != "meta"}
        task["meta"] = current.get("meta") or {}  # If-Match on the completed version; its profiles
        stamp = iso(state.now)
        note = f"Completion undone: back to {before.get('status')}; the outcome recorded with it no longer stands."
        if outcomes:
            note += f" Withdrawn (entered in error): {', '.join(e.url for e in outcomes)}."
        if standing:
            note += f" Not written by this completion, so left as they are: {', '.join(standing)}."
        request, kept = _closed_request(state, current, wrote)
        if kept:
            note += f" {kept}"
        if state.payload.get("reason"):
            note += f" Why: {state.payload['reason']}"
        actor = self.actor(state.payload)
        signed = {"authorReference": {"reference": actor}} if actor else {}
        # notes are append-only: the completion's stay, and this one says they no longer stand
        task["note"] = [*(current.get("note") or []), {"text": note, "time": stamp, **signed}]
        task["lastModified"] = stamp
        entries = [update_entry(task, "task")]
        if request is not None:
            entries.append(update_entry({**request, "status": "active"}, "service_request"))
        entries += outcomes
        patient = (current.get("for") or {}).get("reference")
        if isinstance(patient, str) and patient.startswith("Patient/"):
            state.patient = patient
        return entries

    def _provenance(self, state: RunState, *args: Any, **kwargs: Any) -> PlannedEntry:
        entry = super()._provenance(state, *args, **kwargs)
        entry.resource["reason"] = [{"text": REASON}]
        return entry


def _plain(reference: Any) -> str:
    """``Type/id`` of a reference (relative or absolute, with or without ``_history``)."""
    parts = str(reference or "").split("/_history")[0].split("/")
    return "/".join(parts[-2:])


def added_outputs(current: dict[str, Any], before: dict[str, Any]) -> list[str]:
    """``Type/id`` of each resource the completion added as an output (``valueReference``)."""

    def refs(task: dict[str, Any]) -> list[str]:
        outputs = [o for o in task.get("output") or [] if isinstance(o, dict)]
        named = [(o.get("valueReference") or {}).get("reference") for o in outputs]
        return [_plain(r) for r in named if isinstance(r, str)]

    earlier = set(refs(before))
    return [r for r in dict.fromkeys(refs(current)) if r not in earlier and r.count("/") == 1]


def _stamp(resource: dict[str, Any]) -> datetime | None:
    text = str((resource.get("meta") or {}).get("lastUpdated") or "")
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _written_with(outcome: dict[str, Any], current: dict[str, Any]) -> bool:
    """With no Provenance of the completion (``exchange work`` writes none): the outcome was written in
    the completion's transaction, by the server's clock, and not changed since."""
    written, completed = _stamp(outcome), _stamp(current)
    return written is not None and completed is not None and abs(written - completed) <= SAME_WRITE


def _outcomes(
    state: RunState, current: dict[str, Any], before: dict[str, Any], wrote: set[str] | None
) -> tuple[list[PlannedEntry], list[str]]:
    """The outcomes the completion wrote, marked entered-in-error (If-Match each; never deleted), and
    those it only named (left as they are). ``wrote``: what the completion's Provenance targets (None:
    no Provenance). A payer's ClaimResponse it only named refuses the undo: the payer's decision stands."""
    withdrawn: list[PlannedEntry] = []
    standing: list[str] = []
    for n, ref in enumerate(added_outputs(current, before)):
        outcome = state.found.get(ref)
        if outcome is None:
            continue  # gone from the server: nothing stands
        ours = ref in wrote if wrote is not None else _written_with(outcome, current)
        if not ours and outcome.get("resourceType") == "ClaimResponse":
            text = (
                f"the Task was completed by the payer's decision {ref}, which the payer wrote: the payer's "
                "decision stands and its completion cannot be undone here; nothing was written"
            )
            raise IllegalTransition(text, [Issue("error", "business-rule", text, ("$.task",))])
        if not ours or outcome.get("resourceType") not in WITHDRAWN_BY_STATUS:
            standing.append(ref)
        elif outcome.get("status") != "entered-in-error":
            withdrawn.append(update_entry({**outcome, "status": "entered-in-error"}, f"outcome_{n}"))
    return withdrawn, standing


def _closed_request(
    state: RunState, task: dict[str, Any], wrote: set[str]
) -> tuple[dict[str, Any] | None, str]:
    """The referral's ServiceRequest to reopen: still completed, and closed by this completion (its
    Provenance targets it); else None, and what the note says when a completed one is left as it is.
    A completion made outside fhircare (no Provenance) never reopens it: nothing shows it closed it
    (another Task's completion, or the EHR, may have)."""
    focus = (task.get("focus") or {}).get("reference")
    if not isinstance(focus, str) or not focus.startswith("ServiceRequest/"):
        return None, ""
    request = state.found.get(focus)
    if request is None or request.get("status") != "completed":
        return None, ""
    if focus in wrote:
        return request, ""
    return None, f"{focus} stays completed: this completion did not close it; reopen it if it should be."


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
