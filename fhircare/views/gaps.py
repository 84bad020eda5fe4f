"""Care gaps: rules kept as data (rules/gaps.yaml), evaluated with FHIRPath over a few searches.

Fetching costs one ``batch`` of searches per group of patients (for an owner: one search for the
owner's patients first), never one request per resource. Evaluation indexes what was fetched once
(by patient, by reference) and runs each rule on one patient's slice: linear in the caseload.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import urlencode

import fhirpathpy

from .. import clock
from ..fhir import FhirClient
from ..fhir.bulk import Listener, open_export
from ..settings import Settings
from .gap_rules import SHARED, Rule, load_rules, rule_env, shared_searches
from .labels import reference_of, resource_label
from .rows import Rows

COLUMNS = ("severity", "title", "patient", "resource", "what", "next_workflow")
PATIENTS_PER_BATCH = 40
# the lists a rule can see, and how each is searched for a set of patients
SOURCES: dict[str, tuple[str, str]] = {
    "tasks": ("Task", "patient"),
    "requests": ("ServiceRequest", "patient"),
    "appointments": ("Appointment", "patient"),
    "careplans": ("CarePlan", "patient"),
    "coverages": ("Coverage", "beneficiary"),
    "goals": ("Goal", "patient"),
}
BY_TYPE = {rtype: name for name, (rtype, _) in SOURCES.items()}
Searches = dict[str, str]  # list name -> search URL
SUBJECT_ELEMENTS = ("subject", "for", "patient", "beneficiary")


@dataclass(frozen=True)
class Gap:
    rule: str
    title: str
    severity: str
    next_workflow: str
    patient: str | None
    resource: str
    what: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def patient_of(resource: dict[str, Any]) -> str | None:
    for element in SUBJECT_ELEMENTS:
        ref = reference_of(resource.get(element))
        if ref and ref.startswith("Patient/"):
            return ref
    for participant in resource.get("participant") or []:
        ref = reference_of((participant or {}).get("actor"))
        if ref and ref.startswith("Patient/"):
            return ref
    return None


def owner_patients(client: FhirClient, owners: Iterable[str], page_size: int | None = None) -> Rows[str]:
    """Patients of an owner's (or a team's) open Tasks: one paged search, pages as large as allowed
    (``truncated`` when it stopped before its end)."""
    from .worklist import OPEN_STATUSES

    params = [
        ("owner", ",".join(owners)),
        ("status", ",".join(OPEN_STATUSES)),
        *client.paging.params(page_size, elements=("for",)),
    ]
    search = client.search("Task", params)
    found = {reference_of(t.get("for")) for t in search}
    return Rows(sorted(p for p in found if p and p.startswith("Patient/")), search.truncated)


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def fetch(
    client: FhirClient, patients: list[str] | None, page_size: int = 1000, shared: Searches | None = None
) -> tuple[dict[str, list[dict[str, Any]]], bool]:
    """Every list a rule may need, for these patients (None: everyone), one batch per group of patients,
    the ``shared`` searches in the first; and whether a search of it stopped before its end."""
    shared = dict(shared or {})
    lists: dict[str, list[dict[str, Any]]] = {name: [] for name in [*SOURCES, *shared]}
    truncated = False
    groups: list[list[str] | None] = (
        list(_chunks(patients, PATIENTS_PER_BATCH)) if patients is not None else [None]
    )
    for group in groups:
        if group == []:
            continue
        urls = []
        for rtype, param in SOURCES.values():
            query: list[tuple[str, str]] = [("_count", str(page_size))]
            if group is not None:
                query.insert(0, (param, ",".join(group)))
            urls.append(f"{rtype}?{urlencode(query, safe='/,')}")
        names, urls, shared = [*SOURCES, *shared], [*urls, *shared.values()], {}
        for name, result in zip(names, client.read_batch(urls), strict=False):
            found = _resources(client, result.get("resource") or {})
            lists[name] += found
            truncated = truncated or found.truncated
    return lists, truncated


def subjects_of(resource: dict[str, Any]) -> set[str]:
    """Every patient a search by patient (or beneficiary) would find this resource under."""
    found = {reference_of(resource.get(element)) for element in SUBJECT_ELEMENTS}
    found |= {reference_of((p or {}).get("actor")) for p in resource.get("participant") or []}
    return {ref for ref in found if ref and ref.startswith("Patient/")}


def fetch_exported(
    client: FhirClient, patients: list[str] | None, listener: Listener | None = None
) -> dict[str, list[dict[str, Any]]] | None:
    """The lists of :func:`fetch` from one Bulk Data ``$export`` (``_type`` = the rules' sources), kept
    only for these patients as the NDJSON streams in; None when the server offers no export."""
    types = [rtype for rtype, _ in SOURCES.values()]
    stream = open_export(client, types=types, listener=listener)
    if stream is None:
        return None
    wanted = set(patients) if patients is not None else None
    lists: dict[str, list[dict[str, Any]]] = {name: [] for name in SOURCES}
    for resource in stream:
        name = BY_TYPE.get(str(resource.get("resourceType")))
        if name is not None and (wanted is None or subjects_of(resource) & wanted):
            lists[name].append(resource)
    return lists


def _resources(client: FhirClient, bundle: dict[str, Any]) -> Rows[dict[str, Any]]:
    """Matches of a searchset answered inside a batch, following its next links if it has any;
    ``truncated`` when a next link leaves the server or its ``total`` is beyond what came back."""
    from ..fhir.search import page_of

    if bundle.get("resourceType") != "Bundle":
        return Rows()
    page = page_of(bundle)
    total = page.total
    found = list(page.matches)
    while page.next_url:
        if not client.owns(page.next_url):
            return Rows(found, True)
        page = page_of(client.request("GET", page.next_url).json())
        found += page.matches
    return Rows(found, total is not None and total > len(found))


@dataclass(frozen=True)
class CaseloadIndex:
    """The fetched lists indexed once per evaluation, so a rule sees one patient's slice, not everyone's.

    A candidate's slice holds the resources of its patient, plus any resource that references the
    candidate or that the candidate references (a follow-up Task written for another patient still
    closes a gap). Building it is linear in the caseload; each rule then runs on a few resources.
    """

    by_patient: dict[str | None, dict[str, list[dict[str, Any]]]]
    by_reference: dict[str, tuple[str, dict[str, Any]]]
    referrers: dict[str, list[tuple[str, dict[str, Any]]]]
    patient: dict[int, str | None]

    @classmethod
    def build(cls, lists: dict[str, list[dict[str, Any]]]) -> CaseloadIndex:
        by_patient: dict[str | None, dict[str, list[dict[str, Any]]]] = {}
        by_reference: dict[str, tuple[str, dict[str, Any]]] = {}
        referrers: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        patient: dict[int, str | None] = {}
        for name, resources in lists.items():
            for resource in resources:
                owner = patient_of(resource)
                patient[id(resource)] = owner
                if owner not in by_patient:
                    by_patient[owner] = {n: [] for n in lists}
                by_patient[owner][name].append(resource)
                by_reference[f"{resource.get('resourceType')}/{resource.get('id')}"] = (name, resource)
                for target in references_in(resource):
                    referrers.setdefault(target, []).append((name, resource))
        return cls(by_patient, by_reference, referrers, patient)

    def slice_of(
        self, resource: dict[str, Any], ref: str, owner: str | None
    ) -> dict[str, list[dict[str, Any]]]:
        """The lists a rule sees for one candidate resource."""
        own = self.by_patient.get(owner) or {}
        linked = list(self.referrers.get(ref, ()))
        linked += [self.by_reference[r] for r in references_in(resource) if r in self.by_reference]
        others = [(name, r) for name, r in linked if self.patient.get(id(r)) != owner]
        if not others:
            return own
        merged = {name: list(found) for name, found in own.items()}
        seen: set[int] = set()
        for name, r in others:
            if id(r) not in seen:
                seen.add(id(r))
                merged.setdefault(name, []).append(r)
        return merged


def references_in(value: Any) -> set[str]:
    """Every ``reference`` string anywhere inside a resource."""
    found: set[str] = set()
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            ref = item.get("reference")
            if isinstance(ref, str):
                found.add(ref)
            stack.extend(v for v in item.values() if isinstance(v, (dict, list)))
        elif isinstance(item, list):
            stack.extend(v for v in item if isinstance(v, (dict, list)))
    return found


def evaluate(
    rules: list[Rule], lists: dict[str, list[dict[str, Any]]], today: date, now: datetime | None = None
) -> list[Gap]:
    """Every gap the rules find in already-fetched lists; linear in the caseload, then one sort.
    ``now`` defaults to the clock's time of day on ``today`` (the clock's now when today is today)."""
    now = now or datetime.combine(today, clock.now().astimezone(UTC).timetz())
    index = CaseloadIndex.build({name: found for name, found in lists.items() if name in SOURCES})
    shared = {name: lists.get(name, []) for name in SHARED}
    empty: dict[str, list[dict[str, Any]]] = {name: [] for name in SOURCES}
    gaps = []
    for rule in rules:
        env = {**rule_env(rule, today, now), **shared}
        compiled = fhirpathpy.compile(rule.where)
        for resource in lists[BY_TYPE[rule.resource]]:
            ref = f"{rule.resource}/{resource.get('id')}"
            patient = index.patient.get(id(resource))
            context = {**empty, **index.slice_of(resource, ref, patient), **env}
            context.update(ref=ref, subject=patient or "")
            try:
                hit = compiled(resource, context)
            except Exception:  # data the rule did not foresee (odd types in real data): not a gap  # noqa: S112
                continue
            if hit == [True]:
                gaps.append(
                    Gap(
                        rule.id,
                        rule.heading(),
                        rule.severity,
                        rule.next_workflow,
                        patient,
                        ref,
                        resource_label(resource),
                    )
                )
    order = {"high": 0, "medium": 1, "low": 2}
    return sorted(gaps, key=lambda g: (order[g.severity], g.rule, g.patient or "", g.resource))


def find_gaps(
    client: FhirClient,
    owner: str | None = None,
    patient: str | None = None,
    today: date | None = None,
    settings: Settings | None = None,
    bulk: bool = False,
    listener: Listener | None = None,
) -> Rows[Gap]:
    """Care gaps of one patient, of an owner's patients, or of everyone (``truncated`` when a search
    stopped before its end: the gaps were found on part of the data).

    With ``bulk``, an owner's or everyone's lists come from one Bulk Data ``$export`` when the server
    offers it (paging otherwise; one patient is always one batch): the same gaps either way.
    """
    settings = settings or Settings()
    rules = load_rules(settings)
    today = today or clock.today()
    truncated = False
    if patient:
        patients: list[str] | None = [patient]
    elif owner:
        patients = owner_patients(client, [owner])
        truncated = patients.truncated
    else:
        patients = None
    shared = shared_searches(rules, settings)
    lists = fetch_exported(client, patients, listener) if bulk and not patient else None
    if lists is None:
        lists, cut = fetch(client, patients, shared=shared)
        truncated = truncated or cut
    else:  # the shared lists are no export's: one batch
        for name, result in zip(shared, client.read_batch(shared.values()), strict=False):
            lists[name] = list(_resources(client, result.get("resource") or {}))
    return Rows(evaluate(rules, lists, today), truncated)
