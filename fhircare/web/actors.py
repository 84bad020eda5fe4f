"""Who a change is recorded as: the ``actor`` (Provenance.agent.who, a note's author). One rule for the
API and the pages, applied by runs.run_workflow to every run, whatever route put the actor in:

- a SMART session whose token names a user (``fhirUser``): the actor IS that user. A payload ``actor``
  naming anyone else is 403 naming ``$.actor`` (the user's own PractitionerRole is accepted: one read);
  none named, the user is filled in wherever the workflow takes an ``actor``.
- a SMART session whose token names no user: nothing is written (403). The change could be recorded as
  no one's, and the workflows record the person a payload names (a task's new owner, a referral's
  requester) as its author; the console's header says so.
- a partner's caller (the light pattern): the same check, against the partner's staff
  (runs.partner_payload).
- backend callers (system scopes, no user) and passthrough: the payload's ``actor`` as given: that is
  how an integration acts for a coordinator.
- development mode: the page's "I am" choice (coordinators.py), the only mode with one.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any

from flask import current_app, g

from ..errors import FhircareError, Issue, ScopeDenied
from .callers import own_reference

if TYPE_CHECKING:
    from ..workflows import Workflow

NOT_YOURS = "a change is recorded as made by the signed-in user: the actor may name no one else"
NO_USER = (
    "this session's token names no user (fhirUser): a change could not be recorded as its author's, "
    "so nothing is written; sign in with the fhirUser scope"
)
PERSON = ("Practitioner/", "PractitionerRole/")


def held_actor(payload: Mapping[str, Any], allowed: Collection[str], default: str | None) -> str | None:
    """The actor a caller held to ``allowed`` may name: the payload's, else ``default``. Anyone else is
    403 naming ``$.actor``, except a PractitionerRole of one of ``allowed`` (one read)."""
    actor = payload.get("actor") or default
    if actor is None or actor in allowed:
        return actor
    if isinstance(actor, str) and actor.startswith("PractitionerRole/") and actor.count("/") == 1:
        if _practitioner_of(actor) in allowed:
            return actor
    raise ScopeDenied(NOT_YOURS, [Issue("error", "forbidden", NOT_YOURS, ("$.actor",))])


def _practitioner_of(role: str) -> str | None:
    from .fhir_access import access

    try:
        found = access().client_for_request().read_reference(role)
    except FhircareError as exc:
        if exc.status >= 500:
            raise
        return None  # a role that is not there (or not readable) is no one's
    return str((found.get("practitioner") or {}).get("reference") or "") or None


def signed_in_payload(workflow: Workflow, payload: Mapping[str, Any]) -> Mapping[str, Any]:
    """The payload as the signed-in SMART user may send it (see the module's rule); other modes: as is."""
    launch = g.get("smart_session")
    if launch is None:
        return payload
    if not launch.user:
        raise ScopeDenied(NO_USER)
    settings = current_app.extensions["fhircare.settings"]
    user = own_reference(str(launch.user), (launch.iss, settings.base_url))
    named = payload.get("actor")
    if named == launch.user:  # the pages name the token's fhirUser as it came (maybe absolute)
        named = user
    person = user.startswith(PERSON)
    takes_actor = "actor" in (_schema(workflow).get("properties") or {})
    actor = held_actor({"actor": named}, {user} if person else (), user if person and takes_actor else None)
    rest = {k: v for k, v in payload.items() if k != "actor"}
    return {**rest, "actor": actor} if actor else rest


def _schema(workflow: Workflow) -> dict[str, Any]:
    from ..mapping.validate import workflow_schema

    return workflow_schema(workflow.profiles_dir, workflow.name, workflow.schema_file)
