"""Planning a run, with no network: the entries its mapping and hooks give, the Provenance of the run,
and the local profile checks every entry must pass before anything is sent."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import (
    FhirServerError,
    Issue,
    PayloadError,
)
from ..fhir.versions import etag_version, weak_etag
from ..mapping import BuildContext, PlannedEntry
from ..mapping.entries import mark_request
from ..mapping.transforms import iso
from ..mapping.updates import plan_updates
from ..mapping.validate import profile_issues
from .derive import derived
from .hooks import WorkflowHooks
from .repeats import REVISION, stamp_fingerprint
from .state import PROVENANCE_ENTRY, RunState

DATA_OPERATION = "http://terminology.hl7.org/CodeSystem/v3-DataOperation"
#: the profile every run's Provenance is built to (docs/conformance.md)
PROVENANCE_PROFILE = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-provenance"
R4_BASE_PROFILE = "http://hl7.org/fhir/StructureDefinition/"


def _practitioner(reference: str | None) -> bool:
    """``Practitioner/<id>`` (or its absolute URL): a person acting with no role."""
    parts = (reference or "").split("/")
    return len(parts) >= 2 and parts[-2] == "Practitioner"


class Planner(WorkflowHooks):
    """Turns what a run read and its payload into transaction entries (pure)."""

    def plan(self, state: RunState, new_uuid: Callable[[], str] | None = None) -> list[PlannedEntry]:
        """Every transaction entry of this run, checked against FHIR structure and local profiles.

        No HTTP: ``state.found`` must already hold the resources ``reads`` named.
        """
        ctx = BuildContext(
            state.payload, self.mappings.codes, state.request_id, state.now, namespaces=self.namespaces
        )
        if new_uuid is not None:
            ctx.new_uuid = new_uuid
        names = self.mappings.mapping(self.name).get("derive") or []
        ctx.scope["derived"] = derived(list(names), state, self.mappings.codes)
        created_entries = self.entries(state, ctx)
        by_name = {e.name: e for e in created_entries}
        matched = {e.full_url: state.matched[e.name] for e in created_entries if e.name in state.matched}
        update_entries = self.updates(state, by_name) + [
            update_entry(u.resource, u.name, profile=u.profile)
            for u in plan_updates(self.mappings.mapping(self.name), ctx, state.found, matched)
        ]
        # an update that changes nothing is not sent (a resend finds the activity already added)
        update_entries = [e for e in update_entries if not _unchanged(e, state.found)]
        for entry in update_entries:
            self._declare_profile(entry.resource)
        provenance = self._provenance(state, created_entries, update_entries, ctx.new_uuid)
        planned = [*created_entries, *update_entries, provenance]
        self._check_resources(planned)
        return planned

    def _provenance(
        self,
        state: RunState,
        created: list[PlannedEntry],
        updated: list[PlannedEntry],
        new_uuid: Callable[[], str],
    ) -> PlannedEntry:
        operation = "CREATE" if created else "UPDATE"
        actor = self.actor(state.payload)
        resource: dict[str, Any] = {
            "resourceType": "Provenance",
            "meta": {"profile": [PROVENANCE_PROFILE]},
            "target": [{"reference": e.full_url} for e in created] + [{"reference": e.url} for e in updated],
            "recorded": iso(state.now),
            "activity": {
                "coding": [
                    {"system": DATA_OPERATION, "code": operation},
                    {
                        "system": self.namespaces.system("workflow"),
                        "code": self.name,
                        "display": self.description,
                    },
                ],
                "text": self.name,
            },
            "agent": [
                {
                    "type": {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
                                "code": "author",
                            }
                        ]
                    },
                    "who": {"reference": actor} if actor else {"display": "fhircare"},
                }
            ],
        }
        # US Core 7.0.0 provenance-1: a Practitioner agent acts on behalf of an organization: the
        # payload's, else ours (FHIRCARE_ORGANIZATION or the partners file's self.organization). With
        # no actor, fhircare itself is the agent, on behalf of the organization the payload names (a
        # partner's backend caller in the light pattern: the partner's Organization)
        named = state.payload.get("on_behalf_of")
        on_behalf_of = named or (self.organization if _practitioner(actor) else None)
        if on_behalf_of and (actor or named):
            resource["agent"][0]["onBehalfOf"] = {"reference": str(on_behalf_of)}
        patient_entry = next((e.full_url for e in created if e.resource["resourceType"] == "Patient"), None)
        patient = state.patient or self.patient(state.payload) or patient_entry
        entities = [{"role": "source", "what": {"reference": patient}}] if patient else []
        # the version each update started from: what tells a repeat from a new action (see repeats.py)
        for entry in updated:
            version = etag_version(entry.if_match)
            if version:
                entities.append({"role": REVISION, "what": {"reference": f"{entry.url}/_history/{version}"}})
        if entities:
            resource["entity"] = entities
        criteria = mark_request(resource, state.request_id, PROVENANCE_ENTRY, self.namespaces)
        stamp_fingerprint(resource, state.fingerprint, self.namespaces)
        return PlannedEntry(
            name=PROVENANCE_ENTRY,
            resource=resource,
            full_url=f"urn:uuid:{new_uuid()}",
            url="Provenance",
            if_none_exist=criteria,
        )

    def _declare_profile(self, resource: dict[str, Any]) -> None:
        """An updated resource declares the profiles it declared when read (``update_entry`` keeps
        them); one that declared none (written before fhircare declared profiles, or by another system)
        gets those the mappings in effect declare for every resource of its type they create, or the
        R4 base profile of the type where they differ (Task: SDOHCC referral Tasks and R4 follow-ups)."""
        if (resource.get("meta") or {}).get("profile"):
            return
        rtype = str(resource["resourceType"])
        declared = self.mappings.declared_profiles(rtype)
        profiles = list(declared[0]) if len(declared) == 1 else [R4_BASE_PROFILE + rtype]
        resource["meta"] = {**(resource.get("meta") or {}), "profile": profiles}

    def _check_resources(self, planned: list[PlannedEntry]) -> None:
        issues: list[Issue] = []
        for entry in planned:
            label = f"{entry.resource['resourceType']}({entry.name})"
            issues += profile_issues(
                self.profiles_dir, entry.profile, entry.resource, label, structure=self.structure_checks
            )
        if issues:
            raise PayloadError(f"the {self.name} output breaks a FHIR profile; nothing was sent", issues)


def _unchanged(entry: PlannedEntry, found: dict[str, dict[str, Any]]) -> bool:
    before = found.get(entry.url)
    if before is None:
        return False
    # meta (versionId, lastUpdated; the profiles an update keeps declaring) is not a change
    return {k: v for k, v in before.items() if k != "meta"} == {
        k: v for k, v in entry.resource.items() if k != "meta"
    }


def content_request_id(workflow: str, payload: Mapping[str, Any]) -> str:
    """The request id of a payload that carries none: a digest of its content.

    Re-running the same command after a lost answer then finds what the first run wrote instead
    of writing it twice. To do the very same thing twice on purpose, give distinct request ids.
    """
    canonical = json.dumps({"workflow": workflow, "payload": payload}, sort_keys=True, separators=(",", ":"))
    return "auto-" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]


def update_entry(resource: dict[str, Any], name: str, profile: str | None = None) -> PlannedEntry:
    """An If-Match PUT of a changed copy of a resource read in this run."""
    version = (resource.get("meta") or {}).get("versionId")
    if not version:
        raise FhirServerError(f"{resource['resourceType']}/{resource['id']} came back without meta.versionId")
    body = {k: v for k, v in resource.items() if k != "meta"}
    profiles = (resource.get("meta") or {}).get("profile")
    if profiles:  # the profiles it is built to stay declared; versionId, lastUpdated are the server's
        body = {"resourceType": body["resourceType"], "meta": {"profile": list(profiles)}, **body}
    reference = f"{resource['resourceType']}/{resource['id']}"
    return PlannedEntry(
        name=name,
        resource=body,
        full_url=reference,
        method="PUT",
        url=reference,
        if_match=weak_etag(version),
        profile=profile,
    )
