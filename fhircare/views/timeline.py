"""A patient's story, from the Provenance every fhircare run writes: who did what, when, and the reason
given. Newest first. Two requests beyond the history search: one batch of reads for what the latest runs
wrote (to name it and find the reason: a Task's note or statusReason stamped at the run's time, a
referral's reason, an appointment's cancellation reason) and for the people who acted."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ..fhir import FhirClient
from ..namespaces import Namespaces
from .labels import concept_text, person_name, reference_of, resource_label

SHOWN = 30


@dataclass(frozen=True)
class Moment:
    when: str
    workflow: str  # the workflow's code: the page names it
    who: str
    what: list[str]  # labels of what the run wrote, e.g. "Task: Fulfil referral: Diabetes education"
    reason: str
    targets: list[str]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _reason(resource: dict[str, Any], workflow: str) -> str:
    """The reason a run that created ``resource`` gave with it."""
    kind = resource.get("resourceType")
    if kind == "ServiceRequest" and workflow in ("refer", "transport", "transition"):
        return concept_text(resource.get("reasonCode"))
    # an Appointment's cancellation reason belongs to the run that cancelled it (an update, read from
    # the version it wrote by _change_reason), never to the booking that created it: the current
    # version of a moved booking says "Rescheduled", which the booking itself never said
    return ""


def _change_reason(before: dict[str, Any], after: dict[str, Any]) -> str:
    """The reason an update gave: the statusReason it set with a new status, the notes it added."""
    texts = []
    if after.get("status") != before.get("status") and after.get("statusReason"):
        texts.append(concept_text(after.get("statusReason")))
    if after.get("cancelationReason") and after.get("status") != before.get("status"):
        texts.append(concept_text(after.get("cancelationReason")))
    notes = [n for n in after.get("note") or [] if isinstance(n, dict) and n.get("text")]
    texts += [str(n["text"]) for n in notes[len(before.get("note") or []) :]]
    return " / ".join(texts)


def _revisions(provenance: dict[str, Any]) -> dict[str, str]:
    """``Type/id`` -> the version a run's update started from (its Provenance's ``revision`` entities)."""
    found = {}
    for entity in provenance.get("entity") or []:
        ref = reference_of(entity.get("what")) if isinstance(entity, dict) else None
        if entity.get("role") == "revision" and ref and "/_history/" in ref:
            target, _, version = ref.partition("/_history/")
            found[target] = version
    return found


def _versions(entry: dict[str, Any]) -> list[dict[str, Any]]:
    bundle = entry.get("resource") or {}
    versions = [e["resource"] for e in bundle.get("entry") or [] if isinstance(e.get("resource"), dict)]
    return sorted(reversed(versions), key=lambda r: str((r.get("meta") or {}).get("lastUpdated") or ""))


def _after(versions: list[dict[str, Any]], version: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(the version an update started from, the one it wrote)."""
    ids = [str((v.get("meta") or {}).get("versionId")) for v in versions]
    if version in ids and ids.index(version) + 1 < len(ids):
        at = ids.index(version)
        return versions[at], versions[at + 1]
    return None


def _runs(client: FhirClient, patient: str, namespaces: Namespaces) -> tuple[list[dict[str, Any]], bool]:
    """fhircare's Provenance about the patient (its workflow coding marks a run), oldest first."""
    search = client.search("Provenance", [("entity", patient), *client.paging.params()])
    runs = [
        p
        for p in search
        if any(
            namespaces.is_system(c.get("system"), "workflow")
            for c in (p.get("activity") or {}).get("coding") or []
        )
    ]
    runs.sort(
        key=lambda p: (
            str(p.get("recorded")),
            str((p.get("meta") or {}).get("lastUpdated")),
            str(p.get("id")),
        )
    )
    return runs, search.truncated


def _workflow(provenance: dict[str, Any], namespaces: Namespaces) -> str:
    for coding in (provenance.get("activity") or {}).get("coding") or []:
        if namespaces.is_system(coding.get("system"), "workflow"):
            return str(coding.get("code"))
    return ""


def patient_timeline(
    client: FhirClient, patient: str, namespaces: Namespaces | None = None, shown: int = SHOWN
) -> tuple[list[Moment], bool]:
    """(the latest ``shown`` runs about the patient, newest first; whether older ones were left out).

    One search for the runs, one batch for what the latest wrote (current versions; the history of
    what they updated, to read the reason each update gave) and who ran them."""
    namespaces = namespaces or Namespaces()
    runs, truncated = _runs(client, patient, namespaces)
    latest = list(reversed(runs))[:shown]
    targets = {
        p.get("id"): [r for t in p.get("target") or [] if (r := reference_of(t)) and r.count("/") == 1]
        for p in latest
    }
    agents = {p.get("id"): reference_of(((p.get("agent") or [{}])[0]).get("who")) for p in latest}
    updated = sorted({t for p in latest for t in _revisions(p)})
    reads = sorted(
        {t for ts in targets.values() for t in ts} | {a for a in agents.values() if a and a.count("/") == 1}
    )
    answers = client.read_batch([*reads, *(f"{t}/_history" for t in updated)])
    found = {
        ref: a["resource"]
        for ref, a in zip(reads, answers, strict=False)
        if isinstance(a.get("resource"), dict) and a["resource"].get("id")
    }
    histories = {t: _versions(a) for t, a in zip(updated, answers[len(reads) :], strict=False)}
    moments = []
    for p in latest:
        workflow, revisions, reasons = _workflow(p, namespaces), _revisions(p), []
        for target in targets.get(p.get("id")) or []:
            pair = _after(histories.get(target, []), revisions[target]) if target in revisions else None
            text = (
                _change_reason(*pair)
                if pair
                else ("" if target in revisions else _reason(found.get(target) or {}, workflow))
            )
            if text:
                reasons.append(text)
        agent = agents.get(p.get("id"))
        who = found.get(agent or "")
        moments.append(
            Moment(
                when=str(p.get("recorded") or ""),
                workflow=workflow,
                who=person_name(who)
                if who
                else str((((p.get("agent") or [{}])[0]).get("who") or {}).get("display") or ""),
                what=[
                    f"{t.split('/')[0]}: {resource_label(found[t])}"
                    for t in targets.get(p.get("id")) or []
                    if t in found and t != patient
                ],
                reason=" / ".join(dict.fromkeys(reasons)),
                targets=list(targets.get(p.get("id")) or []),
            )
        )
    return moments, len(runs) > shown or truncated
