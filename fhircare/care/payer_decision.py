"""What a payer decided, read from a ClaimResponse (use ``preauthorization``).

Payers say it in more than one shape, and fhircare reads them all:

- Da Vinci PAS 1.x/2.x: ``item.adjudication.extension[reviewAction]`` with a nested
  ``reviewActionCode`` (X12 306 codes: A1 certified in total, A2 certified partial, A3 not certified,
  A4 pended, A6 modified, C cancelled, CT contact payer, NA no action required);
- the PAS reference implementation: a top-level ``extension[reviewAction]`` with ``valueCode`` (or
  ``valueString`` in its older bundles);
- base FHIR R4 only: ``outcome`` (queued | complete | error | partial), ``preAuthRef`` and
  ``disposition``. ``complete`` with a ``preAuthRef`` is read as approved; ``complete`` without one
  is "review-needed": a person reads the disposition, and the Task stays open.

The most cautious item decision wins (one item not certified makes the whole request denied, one
pended makes it pending), because a coordinator must act on it before booking the service.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

X12_306 = "https://codesystem.x12.org/005010/306"
REVIEW_ACTION = "http://hl7.org/fhir/us/davinci-pas/StructureDefinition/extension-reviewAction"
REVIEW_ACTION_CODE = "http://hl7.org/fhir/us/davinci-pas/StructureDefinition/extension-reviewActionCode"

# X12 306 -> fhircare's decision
X12_DECISION = {
    "A1": "approved",
    "A2": "partially-approved",
    "A6": "modified",
    "A3": "denied",
    "A4": "pending",
    "CT": "pending",
    "C": "cancelled",
    "NA": "not-required",
}
# most cautious first
CAUTION = (
    "denied",
    "error",
    "pending",
    "cancelled",
    "partially-approved",
    "modified",
    "not-required",
    "approved",
)
# a decision -> the prior-auth Task's status once it is recorded (pending leaves the Task open)
TASK_STATUS = {
    "approved": "completed",
    "partially-approved": "completed",
    "modified": "completed",
    "not-required": "completed",
    "denied": "completed",
    "cancelled": "cancelled",
    "error": "failed",
}
DISPLAY = {
    "approved": "Approved",
    "partially-approved": "Partially approved",
    "modified": "Approved with modifications",
    "not-required": "No authorization required",
    "denied": "Denied",
    "pending": "Pending at the payer",
    "cancelled": "Cancelled by the payer",
    "error": "The payer could not process the request",
    "review-needed": "Decided: read the payer's disposition",
}
#: the name of fhircare's decision code system under the deployment's base (fhircare/namespaces.py)
DECISION_SYSTEM_NAME = "prior-auth-decision"


@dataclass(frozen=True)
class Decision:
    decision: str  # a key of DISPLAY
    x12_code: str | None  # the payer's own X12 306 code, when it gave one
    auth_number: str | None  # preAuthRef or the PAS review number
    disposition: str | None

    @property
    def final(self) -> bool:
        return self.decision in TASK_STATUS

    def business_status(self, system: str) -> dict[str, Any]:
        """Task.businessStatus: fhircare's decision code (in ``system``, the deployment's decision code
        system), plus the payer's X12 code when known."""
        coding = [{"system": system, "code": self.decision, "display": DISPLAY[self.decision]}]
        if self.x12_code:
            coding.append({"system": X12_306, "code": self.x12_code})
        return {"coding": coding, "text": DISPLAY[self.decision]}


def _review_codes(extensions: Any) -> list[tuple[str, str | None]]:
    """(X12 code, review number) pairs from a list of extensions."""
    found: list[tuple[str, str | None]] = []
    for ext in extensions if isinstance(extensions, list) else []:
        if not isinstance(ext, dict) or ext.get("url") != REVIEW_ACTION:
            continue
        flat = ext.get("valueCode") or ext.get("valueString")
        if isinstance(flat, str):
            found.append((flat, None))
            continue
        number = None
        code = None
        for part in ext.get("extension") or []:
            if not isinstance(part, dict):
                continue
            if part.get("url") == "number" and isinstance(part.get("valueString"), str):
                number = part["valueString"]
            if part.get("url") in (REVIEW_ACTION_CODE, "code"):
                concept = part.get("valueCodeableConcept") or {}
                for coding in concept.get("coding") or []:
                    if isinstance(coding, dict) and isinstance(coding.get("code"), str):
                        code = coding["code"]
        if code:
            found.append((code, number))
    return found


def decision_of(response: dict[str, Any]) -> Decision:
    """The payer's decision in one ClaimResponse."""
    pairs = _review_codes(response.get("extension"))
    for item in response.get("item") or []:
        if not isinstance(item, dict):
            continue
        pairs += _review_codes(item.get("extension"))
        for adjudication in item.get("adjudication") or []:
            if isinstance(adjudication, dict):
                pairs += _review_codes(adjudication.get("extension"))
    disposition = response.get("disposition") if isinstance(response.get("disposition"), str) else None
    pre_auth = response.get("preAuthRef") if isinstance(response.get("preAuthRef"), str) else None
    known = [(X12_DECISION[code], code, number) for code, number in pairs if code in X12_DECISION]
    if known:
        decision, code, number = min(known, key=lambda found: CAUTION.index(found[0]))
        return Decision(decision, code, pre_auth or number, disposition)
    outcome = response.get("outcome")
    if outcome == "error":
        return Decision("error", None, pre_auth, disposition)
    if outcome == "queued" or outcome not in ("complete", "partial"):
        return Decision("pending", None, pre_auth, disposition)
    if outcome == "partial":
        return Decision("partially-approved", None, pre_auth, disposition)
    # complete with no review action: an authorization number means it was granted; without one a
    # person has to read the disposition, so the Task stays open
    return Decision("approved" if pre_auth else "review-needed", None, pre_auth, disposition)
