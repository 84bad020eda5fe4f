"""fhircare at the performer (a community organization): the owner's side of an incoming referral.

The owner may change only ``status``, ``statusReason`` and ``output`` (Gravity SDOH CC capability
statements); the guard refuses anything else, naming the fields. Completing writes the outcome (a
Procedure) and the Task in one transaction, If-Match on the Task: a retry after a lost answer meets the
version check and writes no second Procedure.
"""

from __future__ import annotations

import copy
import re
import uuid
from typing import Any

from .. import clock
from ..care.task_states import check_transition
from ..errors import Issue, PayloadError
from ..fhir import FhirClient
from ..fhir.transport import relative_to_base, weak_etag
from .copies import OUTCOME_TYPES
from .links import version_of

OWNER_FIELDS = frozenset({"status", "statusReason", "output"})
SERVER_FIELDS = frozenset({"meta", "text", "lastModified", "id", "resourceType"})
OWNER_STATUSES = ("accepted", "rejected", "in-progress", "on-hold", "failed", "completed", "cancelled")
TEMPORARY_CODES = "http://hl7.org/fhir/us/sdoh-clinicalcare/CodeSystem/SDOHCC-CodeSystemTemporaryCodes"
_LITERAL = re.compile(r"([A-Z][A-Za-z]{1,63})/[A-Za-z0-9\-.]{1,64}")
OUTPUT_RULE = (
    "an output the performer sets may name only a resource written in the same change, or a "
    + ", ".join(sorted(OUTCOME_TYPES))
    + " on this server whose subject is the referral's patient (Task.for)"
)


def guard_owner_change(
    before: dict[str, Any], after: dict[str, Any], derived: frozenset[str] = frozenset()
) -> None:
    """Refuse an owner's change outside status, statusReason and output (PayloadError, nothing written).
    ``derived``: fields the writer itself sets along with the status (the task workflow's
    ``executionPeriod``), never the owner's input."""
    changed = sorted(
        k
        for k in set(before) | set(after)
        if k not in OWNER_FIELDS | SERVER_FIELDS | derived and before.get(k) != after.get(k)
    )
    if changed:
        raise PayloadError(
            "the owner of a referral may change only status, statusReason and output",
            [
                Issue("error", "business-rule", f"{name} is requester-owned", (f"$.{name}",))
                for name in changed
            ],
        )


def added_output_references(before: dict[str, Any], after: dict[str, Any]) -> list[tuple[int, str]]:
    """``(index in after.output, reference)`` of each output the change adds that names a resource
    (``valueReference.reference``); outputs the Task already held are not the owner's new choice."""
    earlier = before.get("output") or []
    added = []
    for n, item in enumerate(after.get("output") or []):
        ref = (item.get("valueReference") or {}).get("reference") if isinstance(item, dict) else None
        if item not in earlier and ref is not None:
            added.append((n, str(ref)))
    return added


def outcome_reads(added: list[tuple[int, str]], written: set[str]) -> list[str]:
    """What must be read to check the added outputs: the literal ``Type/id`` of an outcome type that
    this change does not write itself (anything else is refused without a read)."""
    return sorted({ref for _, ref in added if ref not in written and _outcome_literal(ref)})


def guard_owner_outputs(
    task: dict[str, Any],
    added: list[tuple[int, str]],
    written: set[str],
    resolved: dict[str, dict[str, Any]],
) -> None:
    """Refuse an added output that names anything but a resource this change writes (``written``: the
    full URLs of its new entries) or an outcome-type resource (``OUTCOME_TYPES``) whose subject is the
    Task's patient (``resolved``: what the references name, as read; absent = nothing there). One answer
    for another patient's, another type and none at all: no answer tells whether a resource exists."""
    patient = (task.get("for") or {}).get("reference")
    bad = []
    for n, ref in added:
        if ref in written:
            continue
        named = resolved.get(ref) if _outcome_literal(ref) else None
        if named is None or patient is None or named.get("resourceType") != ref.split("/")[0]:
            bad.append(n)
            continue
        subject = (named.get("subject") or named.get("patient") or {}).get("reference")
        if not isinstance(subject, str) or subject.split("/_history")[0] != patient:
            bad.append(n)
    if bad:
        raise PayloadError(
            "the owner of a referral may name as its output only this patient's outcome",
            [Issue("error", "business-rule", OUTPUT_RULE, (f"$.output[{n}].valueReference",)) for n in bad],
        )


def _outcome_literal(reference: str) -> bool:
    """A relative ``Type/id`` on this server, of a type a referral's outcome may be."""
    found = _LITERAL.fullmatch(reference)
    return found is not None and found.group(1) in OUTCOME_TYPES


def outcome_procedure(task: dict[str, Any], outcome: str) -> dict[str, Any]:
    """The Procedure a completed referral points at (resulting-activity)."""
    procedure: dict[str, Any] = {
        "resourceType": "Procedure",
        "status": "completed",
        "code": {"text": outcome},
        "performedDateTime": clock.now().isoformat(timespec="seconds"),
    }
    if task.get("for"):
        procedure["subject"] = task["for"]
    based = task.get("basedOn") or ([task["focus"]] if task.get("focus") else [])
    if based:
        procedure["basedOn"] = based
    return procedure


def work(
    client: FhirClient, task_id: str, to: str, reason: str | None = None, outcome: str | None = None
) -> dict[str, Any]:
    """Move an incoming referral Task (accept, reject "at capacity", complete with an outcome)."""
    if to not in OWNER_STATUSES:
        raise PayloadError(
            f"{to!r} is not a status the owner sets",
            [Issue("error", "value", ", ".join(OWNER_STATUSES), ("$.to",))],
        )
    if to == "completed" and not outcome:
        raise PayloadError(
            "a completed referral carries an outcome", [Issue("error", "required", "outcome", ("$.outcome",))]
        )
    task = client.read("Task", task_id)
    check_transition(str(task.get("status")), to)
    after = copy.deepcopy(task)
    after["status"] = to
    # when the status changed, by fhircare's clock: never the time the requester put on the Task
    after["lastModified"] = clock.now().isoformat(timespec="seconds")
    if reason:
        after["statusReason"] = {"text": reason}
    else:
        after.pop("statusReason", None)
    entries: list[dict[str, Any]] = []
    if to == "completed" and outcome:
        full = f"urn:uuid:{uuid.uuid4()}"
        entries.append(
            {
                "fullUrl": full,
                "resource": outcome_procedure(task, outcome),
                "request": {"method": "POST", "url": "Procedure"},
            }
        )
        kind = {"coding": [{"system": TEMPORARY_CODES, "code": "resulting-activity"}]}
        after["output"] = [*(task.get("output") or []), {"type": kind, "valueReference": {"reference": full}}]
    guard_owner_change(task, after)
    guard_owner_outputs(task, added_output_references(task, after), {e["fullUrl"] for e in entries}, {})
    entries.insert(
        0,
        {
            "resource": after,
            "request": {"method": "PUT", "url": f"Task/{task_id}", "ifMatch": weak_etag(version_of(task))},
        },
    )
    answer = client.transaction({"resourceType": "Bundle", "type": "transaction", "entry": entries})
    written = [
        relative_to_base(str((e.get("response") or {}).get("location") or ""), client.base_url).split(
            "/_history"
        )[0]
        for e in answer.get("entry") or []
    ]
    return {"task": f"Task/{task_id}", "status": to, "written": written}
