"""What fhircare did for a patient, read back from the Provenance records every workflow writes."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from ..care.task_states import partner_link
from ..fhir import FhirClient
from ..namespaces import Namespaces
from .labels import reference_of
from .rows import Rows

COLUMNS = ("recorded", "workflow", "who", "targets", "request_id")


@dataclass(frozen=True)
class HistoryRow:
    recorded: str
    workflow: str
    who: str
    targets: list[str]
    request_id: str | None
    provenance: str
    stored: str = ""  # the server's meta.lastUpdated: orders runs within the same second

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _workflow_of(provenance: dict[str, Any], namespaces: Namespaces) -> str:
    activity = provenance.get("activity") or {}
    for coding in activity.get("coding") or []:
        if namespaces.is_system(coding.get("system"), "workflow"):
            return str(coding.get("code"))
    return str(activity.get("text") or "")


def _request_id_of(provenance: dict[str, Any], namespaces: Namespaces) -> str | None:
    for tag in (provenance.get("meta") or {}).get("tag") or []:
        if namespaces.is_system(tag.get("system"), "request-id") and isinstance(tag.get("code"), str):
            return str(tag["code"]).rsplit("/", 1)[0]
    return None


def patient_history(
    client: FhirClient, patient: str, page_size: int | None = None, namespaces: Namespaces | None = None
) -> Rows[HistoryRow]:
    """fhircare's Provenance about a patient (entity = the patient), oldest first; paged lazily, in
    pages as large as the server allows unless ``page_size`` says (a :class:`Rows`: ``truncated``
    says whether paging stopped before the end).

    Runs are recognised by the workflow code system under ``namespaces`` (the deployment's base) or
    the ``urn:fhircare:workflow`` system of earlier releases."""
    namespaces = namespaces or Namespaces()
    rows = []
    search = client.search("Provenance", [("entity", patient), *client.paging.params(page_size)])
    for provenance in search:
        workflow = _workflow_of(provenance, namespaces)
        if not workflow:
            continue  # a Provenance written by someone else
        agents = provenance.get("agent") or []
        who = reference_of(agents[0].get("who")) if agents else None
        rows.append(
            HistoryRow(
                recorded=str(provenance.get("recorded", "")),
                workflow=workflow,
                who=who or str(((agents[0].get("who") or {}).get("display")) if agents else ""),
                targets=[r for r in (reference_of(t) for t in provenance.get("target") or []) if r],
                request_id=_request_id_of(provenance, namespaces),
                provenance=f"Provenance/{provenance.get('id')}",
                stored=str((provenance.get("meta") or {}).get("lastUpdated", "")),
            )
        )
    return Rows(sorted(rows, key=lambda r: (r.recorded, r.stored, r.provenance)), search.truncated)


@dataclass(frozen=True)
class Writer:
    """Who wrote one version of a resource, from the Provenance that names it."""

    provenance: dict[str, Any] | None  # the run's Provenance; None when none names this version
    agent: str | None = None  # ``Type/id`` of who acted
    partner: str | None = None  # for a version sync applied: our Organization standing for the partner
    remote_version: str = ""  # ... and the partner's version it applied (its absolute URL)
    exchange: str = ""  # a version the exchange wrote with no run of its own: "sent", "link"


def _link_key(task: dict[str, Any]) -> str:
    """``<the partner's Task URL>/_history/<the version last applied>`` from our Task's link, or ""."""
    link = partner_link(task) or {}
    values = {
        s.get("url"): next((v for k, v in s.items() if k.startswith("value")), None)
        for s in link.get("extension") or []
        if isinstance(s, dict)
    }
    remote, version = values.get("remote"), values.get("version")
    return f"{remote}/_history/{version}" if remote and version else ""


class VersionWriters:
    """Which Provenance wrote which version of ``target``: a workflow run by the version it started from
    (its ``revision`` entity), else by its ``recorded`` time stamped on the resource (``lastModified``); a
    version sync applied from a partner by the partner's version its Provenance names (``entity`` role
    ``source``) against the one our Task's exchange link says was applied."""

    def __init__(self, target: str, provenances: list[dict[str, Any]]) -> None:
        self.target = target
        self.by_revision: dict[str, dict[str, Any]] = {}
        self.by_recorded: dict[str, dict[str, Any]] = {}
        self.by_source: dict[str, dict[str, Any]] = {}
        self.creations: list[dict[str, Any]] = []  # runs that wrote the target with no version before
        for p in provenances:
            sources, revised = [], False
            for entity in p.get("entity") or []:
                what = reference_of(entity.get("what")) if isinstance(entity, dict) else None
                if not what:
                    continue
                if entity.get("role") == "revision" and what.startswith(f"{target}/_history/"):
                    self.by_revision[what.rsplit("/", 1)[1]] = p
                    revised = True
                elif entity.get("role") == "source" and what.startswith(("http://", "https://")):
                    sources.append(what)
            for source in sources:
                self.by_source[source] = p
            if not sources:
                self.by_recorded.setdefault(str(p.get("recorded") or ""), p)
            if not sources and not revised:
                self.creations.append(p)
        self.creations.sort(key=lambda p: str(p.get("recorded") or ""))

    def agents(self) -> set[str]:
        """Everyone the Provenance names as acting (``who`` and ``onBehalfOf``), to be read by name."""
        every = [*self.by_revision.values(), *self.by_recorded.values(), *self.by_source.values()]
        every += self.creations[:1]
        return {
            r
            for p in every
            for a in p.get("agent") or []
            if isinstance(a, dict)
            for r in (reference_of(a.get("who")), reference_of(a.get("onBehalfOf")))
            if r
        }

    def writer(self, before: dict[str, Any], after: dict[str, Any]) -> Writer:
        """Who wrote ``after`` (``before``: the version it followed, ``{}`` for the first)."""
        key = _link_key(after)
        if key and key != _link_key(before) and key in self.by_source:
            synced = self.by_source[key]
            agent = ((synced.get("agent") or [{}])[0]) or {}
            return Writer(synced, reference_of(agent.get("who")), partner_of(synced), key)
        run = self.by_revision.get(str((before.get("meta") or {}).get("versionId") or "")) if before else None
        stamped = after.get("lastModified")
        if run is None and not (before and stamped and stamped == before.get("lastModified")):
            run = self.by_recorded.get(str(stamped or (after.get("meta") or {}).get("lastUpdated") or ""))
        if run is None and not before and self.creations:
            run = self.creations[0]  # the first version: the run that created it
        if run is not None:
            return Writer(run, reference_of(((run.get("agent") or [{}])[0] or {}).get("who")))
        if partner_link(after) != partner_link(before):
            return Writer(None, exchange="sent" if partner_link(before) is None else "link")
        return Writer(None)


def instant_of(text: str) -> datetime:
    """A Provenance's ``recorded`` as a moment, to order runs and sync (written in different forms)."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def synced_provenance(entry: dict[str, Any]) -> list[dict[str, Any]]:
    """The Provenance sync wrote applying a partner's version (an ``entity`` naming its absolute URL)."""
    return [
        p
        for e in (entry.get("resource") or {}).get("entry") or []
        if isinstance(p := e.get("resource"), dict)
        and p.get("resourceType") == "Provenance"
        and any(
            isinstance(x, dict)
            and x.get("role") == "source"
            and str(reference_of(x.get("what")) or "").startswith(("http://", "https://"))
            for x in p.get("entity") or []
        )
    ]


def partner_of(provenance: dict[str, Any]) -> str | None:
    """Our Organization standing for the partner in sync's Provenance (``onBehalfOf``, else ``who``)."""
    agent = (provenance.get("agent") or [{}])[0] or {}
    return reference_of(agent.get("onBehalfOf")) or reference_of(agent.get("who"))
