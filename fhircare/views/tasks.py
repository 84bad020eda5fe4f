"""One task, open or closed, and its story: what it is, its status and why, its notes (author and time),
its outcome, and each change fhircare made to it (who, what, when, the reason).

Two requests: one batch with the Task's history and the Provenance that targets it, one batch of reads
for the people and the focus the Task names."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from ..care.task_states import REASONED, TERMINAL, TRANSITIONS, completion_time, sent_to_partner
from ..errors import NotFound
from ..fhir import FhirClient
from .history import VersionWriters, Writer
from .labels import (
    Outcome,
    concept_text,
    outcome_references,
    outcomes,
    performer_references,
    person_name,
    reference_of,
    resource_label,
)
from .worklist import due_of

#: the order a page offers next statuses in: the way forward, then pausing, then the ways out
OFFERED_ORDER = (
    "requested",
    "received",
    "accepted",
    "ready",
    "in-progress",
    "on-hold",
    "completed",
    "rejected",
    "failed",
    "cancelled",
)
#: resource types a page names by their ``name``
NAMED = ("Practitioner", "Organization", "RelatedPerson", "HealthcareService", "Patient", "Location")


@dataclass(frozen=True)
class Note:
    text: str
    time: str
    author: str  # a name, or "" when the note names no author


@dataclass(frozen=True)
class Change:
    """One version of the Task after the first: when, who, what changed, and why."""

    when: str
    who: str
    what: str
    reason: str
    version: str
    remote_version: str = ""  # the partner's version (absolute URL) sync applied, for one sync wrote


@dataclass
class TaskDetail:
    reference: str
    version: str
    patient: str | None
    what: str
    status: str
    status_reason: str
    business_status: str
    owner: str
    owner_name: str
    due: str | None
    authored: str
    focus: str | None
    focus_label: str
    outcome: str
    outcomes: list[Outcome] = field(default_factory=list)  # the outcome in words, one per output
    referral: bool = False  # a fulfilment Task of a ServiceRequest: completing it records an output
    #: when the newest version completed the Task (ISO 8601; "" when it is not a completion nothing
    #: followed): what an undo of the completion is timed from
    completed_at: str = ""
    sent: bool = False  # sent to a partner organization: the partner's status owns it
    #: the Task's extensions (the web layer reads the exchange link from them: partner status, sync time)
    extensions: list[dict[str, Any]] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)

    @property
    def closed(self) -> bool:
        return self.status in TERMINAL

    @property
    def next_statuses(self) -> list[str]:
        """The statuses the FHIR Task state machine allows from here: onward first, then the stops; none
        on a referral sent to a partner (the partner sets them; a cancel goes through the exchange)."""
        if self.sent:
            return []
        allowed = TRANSITIONS.get(self.status, frozenset())
        return [s for s in OFFERED_ORDER if s in allowed]

    @property
    def reasoned(self) -> tuple[str, ...]:
        """Next statuses a reason explains (and the page asks one for)."""
        return tuple(s for s in self.next_statuses if s in REASONED)


def _history(entry: dict[str, Any]) -> list[dict[str, Any]]:
    bundle = entry.get("resource") or {}
    versions = [e["resource"] for e in bundle.get("entry") or [] if isinstance(e.get("resource"), dict)]
    # a history is newest first; version ids are opaque (Medplum's are UUIDs), the stored times are not
    return sorted(reversed(versions), key=lambda r: str((r.get("meta") or {}).get("lastUpdated") or ""))


def _notes(task: dict[str, Any]) -> list[dict[str, Any]]:
    return [n for n in task.get("note") or [] if isinstance(n, dict) and n.get("text")]


def _change(before: dict[str, Any], after: dict[str, Any], names: dict[str, str]) -> tuple[str, str]:
    """(what changed from one version to the next, the reason given)."""
    what: list[str] = []
    reason = ""
    if not before:
        return f"created ({after.get('status')})", concept_text(after.get("statusReason"))
    if before.get("status") == "completed" and after.get("status") not in ("completed", "entered-in-error"):
        what.append(f"completion undone: status completed → {after.get('status')}")
    elif before.get("status") != after.get("status"):
        what.append(f"status {before.get('status')} → {after.get('status')}")
        reason = concept_text(after.get("statusReason"))
    old_owner, new_owner = reference_of(before.get("owner")), reference_of(after.get("owner"))
    if old_owner != new_owner and new_owner:
        what.append(f"handed to {names.get(new_owner) or 'another owner'}")
    added = _notes(after)[len(_notes(before)) :]
    if added:
        what.append("note added")
        reason = reason or " / ".join(str(n["text"]) for n in added)
    if (after.get("output") or []) != (before.get("output") or []):
        what.append("outcome recorded" if after.get("output") else "outcome withdrawn")
    if concept_text(before.get("businessStatus")) != concept_text(after.get("businessStatus")):
        what.append(f"progress: {concept_text(after.get('businessStatus'))}")
    return "; ".join(what) or "changed", reason


def _story(before: dict[str, Any], after: dict[str, Any], writer: Writer, names: dict[str, str]) -> Change:
    """One version as the page tells it: when, who (a coordinator, the partner through sync), what, why."""
    what, reason = _change(before, after, names)
    version = str((after.get("meta") or {}).get("versionId") or "")
    stored = str((after.get("meta") or {}).get("lastUpdated") or "")
    stamped = str(after.get("lastModified") or "")
    when = stamped if stamped and stamped != before.get("lastModified") else stored
    if writer.partner:  # applied by sync from the partner's version: their words, their reason
        partner = names.get(writer.partner, "") or "the partner"
        reason = reason or (
            concept_text(after.get("statusReason"))
            if after.get("statusReason") != before.get("statusReason")
            else ""
        )
        recorded = str((writer.provenance or {}).get("recorded") or "")
        return Change(
            recorded or stored, f"{partner} (partner), via sync", what, reason, version, writer.remote_version
        )
    if writer.provenance is not None:
        return Change(when, names.get(writer.agent or "", ""), what, reason, version)
    if writer.exchange:
        said = "sent to the partner" if writer.exchange == "sent" else "the partner's Task checked"
        return Change(
            stored, "fhircare exchange (sync)", what if what != "changed" else said, reason, version
        )
    return Change(when, "someone outside fhircare", what, reason, version)


def task_detail(client: FhirClient, task: str) -> TaskDetail:
    """The Task ``Type/id`` as the task page shows it (NotFound when it does not exist)."""
    query = urlencode({"target": task, "_count": "100"})
    history_entry, provenance_entry = client.read_batch([f"{task}/_history", f"Provenance?{query}"])
    versions = _history(history_entry)
    if not versions or versions[-1].get("resourceType") != "Task":
        raise NotFound(f"no Task {task}")
    current = versions[-1]
    provenances = [
        p
        for e in (provenance_entry.get("resource") or {}).get("entry") or []
        if isinstance(p := e.get("resource"), dict) and p.get("resourceType") == "Provenance"
    ]
    runs = VersionWriters(task, provenances)
    people = {
        ref
        for v in versions
        for ref in (
            reference_of(v.get("owner")),
            *(reference_of(n.get("authorReference")) for n in _notes(v)),
        )
        if ref
    }
    focus = reference_of(current.get("focus"))
    wanted = {
        r
        for r in people | runs.agents() | {focus} | set(outcome_references(current))
        if r and r.count("/") == 1 and not r.startswith("Patient/")
    }
    found = client.read_found(sorted(wanted))
    done_by = [r for r in performer_references(found.get(o) for o in outcome_references(current))]
    if missing := [r for r in done_by if r not in found and not r.startswith("Patient/")]:
        found |= client.read_found(missing)  # who did the outcomes, when the page read nobody of them yet
    names = {
        ref: person_name(r) if r.get("resourceType") in NAMED else resource_label(r)
        for ref, r in found.items()
    }
    changes = [
        _story(before, after, runs.writer(before, after), names)
        for before, after in zip([{}, *versions], versions, strict=False)
    ]
    said = outcomes(current, found, names)
    owner = reference_of(current.get("owner")) or ""
    return TaskDetail(
        reference=task,
        version=str((current.get("meta") or {}).get("versionId") or ""),
        patient=reference_of(current.get("for")),
        what=str(current.get("description") or concept_text(current.get("code")) or "task"),
        status=str(current.get("status") or ""),
        status_reason=concept_text(current.get("statusReason")),
        business_status=concept_text(current.get("businessStatus")),
        owner=owner,
        owner_name=names.get(owner, ""),
        due=due_of(current),
        authored=str(current.get("authoredOn") or ""),
        focus=focus,
        focus_label=resource_label(found.get(focus or "")) if focus else "",
        outcome="; ".join(o.text for o in said),
        outcomes=said,
        referral=bool(focus and focus.startswith("ServiceRequest/"))
        and "fulfill"
        in {c.get("code") for c in (current.get("code") or {}).get("coding") or [] if isinstance(c, dict)},
        notes=[
            Note(
                str(n["text"]),
                str(n.get("time") or ""),
                names.get(reference_of(n.get("authorReference")) or "", ""),
            )
            for n in _notes(current)
        ],
        changes=list(reversed(changes)),
        # the undo window as the workflow counts it: from the completing run's Provenance (else the server)
        completed_at=_iso(completion_time(current, versions[-2] if len(versions) > 1 else None, provenances)),
        sent=sent_to_partner(current),
        extensions=[e for e in current.get("extension") or [] if isinstance(e, dict)],
    )


def _iso(moment: Any) -> str:
    return moment.isoformat() if moment is not None else ""


@dataclass(frozen=True)
class TaskWords:
    """What a list of tasks shows beside each: why it stands where it stands, and its latest note."""

    status_reason: str
    last_note: str
    last_note_time: str


def task_words(client: FhirClient, tasks: list[str]) -> dict[str, TaskWords]:
    """``Task/id`` -> its status reason and latest note, for the tasks given (one batch of reads)."""
    found = client.read_found(sorted({t for t in tasks if t.count("/") == 1}))
    words = {}
    for ref, task in found.items():
        notes = _notes(task)
        last = notes[-1] if notes else {}
        words[ref] = TaskWords(
            concept_text(task.get("statusReason")), str(last.get("text") or ""), str(last.get("time") or "")
        )
    return words
