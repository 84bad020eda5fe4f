"""A patient's story, from the Provenance every fhircare run writes: who did what, when, and the reason
given. Newest first. Two requests beyond the history search: one batch of reads for what the latest runs
wrote (to name it and find the reason: a Task's note or statusReason stamped at the run's time, a
referral's reason, an appointment's cancellation reason) and for the people who acted. The same batch
asks for sync's Provenance on the Tasks the runs created (a partner's progress applied onto a referral
sent to it names only the Task); when there is some, one batch more reads the partners and those Tasks'
histories, and the partner's moments ("Food Bank (partner), via sync", what moved, their reason) join
the runs'."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlencode

from ..fhir import FhirClient
from ..namespaces import Namespaces
from .history import VersionWriters, instant_of, partner_of, synced_provenance
from .labels import concept_text, person_name, reference_of, resource_label

SHOWN = 30
#: how many of the patient's latest created Tasks the timeline asks sync's Provenance about
SYNCED_TASKS = 50
#: what the timeline calls a version sync applied from a partner (the page shows it as the action)
SYNC = "The partner's progress (sync)"


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


def _created_tasks(runs: list[dict[str, Any]]) -> list[str]:
    """The Tasks the patient's runs created (not updated), newest first, at most ``SYNCED_TASKS``: the
    referrals a partner may have moved, whose sync Provenance names only the Task."""
    found: dict[str, None] = {}
    for p in reversed(runs):
        revised = _revisions(p)
        for t in p.get("target") or []:
            ref = reference_of(t)
            if ref and ref.startswith("Task/") and ref.count("/") == 1 and ref not in revised:
                found[ref] = None
    return list(found)[:SYNCED_TASKS]


def _sync_moment(
    p: dict[str, Any], found: dict[str, dict[str, Any]], histories: dict[str, list[dict[str, Any]]]
) -> Moment:
    """A version sync applied from the partner: the partner by name, what moved, the partner's reason."""
    task = next((r for t in p.get("target") or [] if (r := reference_of(t))), "")
    source = next(
        str(reference_of(x.get("what")))
        for x in p.get("entity") or []
        if isinstance(x, dict) and x.get("role") == "source"
    )
    versions = histories.get(task, [])
    writers = VersionWriters(task, [p])
    pair = next(
        (
            (b, a)
            for b, a in zip([{}, *versions], versions, strict=False)
            if writers.writer(b, a).remote_version == source
        ),
        None,
    )
    what = [f"Task: {resource_label(found[task])}"] if task in found else []
    reason = ""
    if pair:
        before, after = pair
        if before.get("status") != after.get("status"):
            what.append(f"status {before.get('status')} → {after.get('status')}")
        if after.get("statusReason") != before.get("statusReason"):
            reason = concept_text(after.get("statusReason"))
        if (after.get("output") or []) != (before.get("output") or []):
            what.append("outcome recorded")
    partner = person_name(found.get(partner_of(p) or "")) or "the partner"
    return Moment(
        when=str(p.get("recorded") or ""),
        workflow=SYNC,
        who=f"{partner} (partner), via sync",
        what=what,
        reason=reason,
        targets=[task] if task else [],
    )


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
    tasks = _created_tasks(runs)
    query = urlencode({"target": ",".join(tasks), "_count": "200"})
    answers = client.read_batch(
        [*reads, *(f"{t}/_history" for t in updated), *([f"Provenance?{query}"] if tasks else [])]
    )
    found = {
        ref: a["resource"]
        for ref, a in zip(reads, answers, strict=False)
        if isinstance(a.get("resource"), dict) and a["resource"].get("id")
    }
    histories = {t: _versions(a) for t, a in zip(updated, answers[len(reads) :], strict=False)}
    synced = synced_provenance(answers[-1]) if tasks and len(answers) == len(reads) + len(updated) + 1 else []
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
    if synced:  # the partner's progress on the patient's referrals, named: one batch more
        moments, older = _with_synced(client, moments, synced, found, histories, shown)
        return moments, older or len(runs) > shown or truncated
    return moments, len(runs) > shown or truncated


def _with_synced(
    client: FhirClient,
    moments: list[Moment],
    synced: list[dict[str, Any]],
    found: dict[str, dict[str, Any]],
    histories: dict[str, list[dict[str, Any]]],
    shown: int,
) -> tuple[list[Moment], bool]:
    """The runs' moments and sync's, newest first, ``shown`` of them; the partners and the histories of
    the Tasks sync moved read in one batch."""
    synced = sorted(synced, key=lambda p: str(p.get("recorded") or ""), reverse=True)[:shown]
    tasks = sorted({r for p in synced for t in p.get("target") or [] if (r := reference_of(t))})
    partners = sorted({r for p in synced if (r := partner_of(p)) and r.count("/") == 1} - set(found))
    wanted = [t for t in tasks if t not in histories]
    answers = client.read_batch([*partners, *(f"{t}/_history" for t in wanted)])
    more = dict(found)
    for ref, answer in zip(partners, answers, strict=False):
        if isinstance(answer.get("resource"), dict) and answer["resource"].get("id"):
            more[ref] = answer["resource"]
    histories = {**histories}
    for ref, answer in zip(wanted, answers[len(partners) :], strict=False):
        histories[ref] = _versions(answer)
    for ref in (t for t in tasks if t not in found):
        versions = histories.get(ref) or []
        if versions:
            more[ref] = versions[-1]
    every = [*moments, *(_sync_moment(p, more, histories) for p in synced)]
    every.sort(key=lambda m: instant_of(m.when), reverse=True)
    return every[:shown], len(every) > shown
