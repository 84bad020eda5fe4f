"""Prior authorizations: each prior-auth Task, its Claim, and what the payer answered.

Two searches per page of Tasks, whatever their number: ``Task?code=approve`` with ``_include`` of the
Claim and the patient, then ``ClaimResponse?request=`` every Claim of the page (its own pages
followed; one such search per 100 Claims, so that its URL stays short on pages as large as the server
allows). A ClaimResponse that names no Claim cannot be matched here; record it with
``prior-auth`` ``action: record-decision``, which matches it on the patient.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from ..care.payer_decision import DISPLAY, TASK_STATUS, decision_of
from ..errors import FhircareError
from ..fhir import FhirClient
from .labels import concept_text, person_name, reference_of
from .related import related_resources
from .worklist import OPEN_STATUSES, due_of

APPROVE = "http://hl7.org/fhir/CodeSystem/task-code|approve"
CLAIMS_PER_SEARCH = 100  # ClaimResponse?request=<100 Claim references>: a URL of about 4 kB
COLUMNS = (
    "task",
    "patient_name",
    "service",
    "status",
    "decision",
    "auth_number",
    "recorded",
    "due",
    "claim_response",
)


@dataclass(frozen=True)
class AuthorizationRow:
    task: str
    patient: str | None
    patient_name: str
    claim: str | None
    service: str
    status: str
    due: str | None
    claim_response: str | None  # the payer's latest answer to the Claim, if any
    decision: str  # a fhircare decision code, or "awaiting" when the payer has not answered
    decision_text: str
    auth_number: str | None
    recorded: bool  # the Task already points at this answer

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def to_record(self) -> bool:
        return self.claim_response is not None and not self.recorded and self.status in OPEN_STATUSES


def latest_answers(responses: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The newest ClaimResponse per Claim it answers (by ``created``, then ``meta.lastUpdated``); one
    marked entered-in-error answers nothing."""
    latest: dict[str, dict[str, Any]] = {}

    def newness(response: dict[str, Any]) -> tuple[str, str]:
        return str(response.get("created") or ""), str((response.get("meta") or {}).get("lastUpdated") or "")

    for response in responses:
        answered = reference_of(response.get("request"))
        if response.get("resourceType") != "ClaimResponse" or not answered:
            continue
        if response.get("status") == "entered-in-error":  # withdrawn (an undone completion): no answer
            continue
        if answered not in latest or newness(response) >= newness(latest[answered]):
            latest[answered] = response
    return latest


def claim_service(claim: dict[str, Any]) -> str:
    """What a Claim asks for: its first item's productOrService."""
    items = [i for i in claim.get("item") or [] if isinstance(i, dict)]
    return concept_text(items[0].get("productOrService")) if items else ""


def answer_fields(response: dict[str, Any] | None) -> dict[str, Any]:
    """The payer's answer as row fields: decision code and text, authorization number, reference."""
    if response is None:
        return {
            "decision": "awaiting",
            "decision_text": "Awaiting the payer",
            "auth_number": None,
            "claim_response": None,
        }
    decision = decision_of(response)
    return {
        "decision": decision.decision,
        "decision_text": DISPLAY[decision.decision],
        "auth_number": decision.auth_number,
        "claim_response": f"ClaimResponse/{response.get('id')}",
    }


def _row(
    task: dict[str, Any], related: dict[str, dict[str, Any]], answers: dict[str, dict[str, Any]]
) -> AuthorizationRow:
    patient = reference_of(task.get("for"))
    claim_ref = reference_of(task.get("focus"))
    answer = answer_fields(answers.get(claim_ref or ""))
    outputs = {reference_of(o.get("valueReference")) for o in task.get("output") or [] if isinstance(o, dict)}
    return AuthorizationRow(
        task=f"Task/{task.get('id')}",
        patient=patient,
        patient_name=person_name(related.get(patient or "")) if patient else "",
        claim=claim_ref,
        service=claim_service(related.get(claim_ref or "") or {}) or str(task.get("description") or ""),
        status=str(task.get("status", "")),
        due=(due_of(task) or "")[:10] or None,
        recorded=answer["claim_response"] is not None and answer["claim_response"] in outputs,
        **answer,
    )


def authorizations(
    client: FhirClient,
    patient: str | None = None,
    requester: str | None = None,
    statuses: Sequence[str] = OPEN_STATUSES,
    page_size: int | None = None,
) -> Generator[AuthorizationRow, None, bool]:
    """Prior-auth Tasks (open ones by default) with the payer's answer, one page in memory at a time
    (without ``page_size``, pages as large as the server allows); returns whether a search stopped
    before its end (``fhircare.views.rows.drain`` collects the rows and that flag)."""
    params = [
        ("code", APPROVE),
        ("_include", "Task:focus"),
        ("_include", "Task:patient"),
        *client.paging.params(page_size),
    ]
    if statuses:
        params.append(("status", ",".join(statuses)))
    if patient:
        params.append(("patient", patient))
    if requester:
        params.append(("requester", requester))
    included = client.include_works("Task", "Task:focus")
    tasks = client.search("Task", params)
    truncated = False
    for page in tasks.pages():
        wanted = (reference_of(task.get(key)) for task in page.matches for key in ("focus", "for"))
        related = related_resources(client, page, wanted, included)
        claims = sorted(
            {
                ref
                for task in page.matches
                if (ref := reference_of(task.get("focus"))) is not None and ref.startswith("Claim/")
            }
        )
        answers: dict[str, dict[str, Any]] = {}
        for start in range(0, len(claims), CLAIMS_PER_SEARCH):
            group = claims[start : start + CLAIMS_PER_SEARCH]
            # a Claim may have several answers (pended, then final): room for them on one page
            count = client.paging.page_size(max(3 * len(group), 100))
            found = client.search("ClaimResponse", [("request", ",".join(group)), ("_count", str(count))])
            answers.update(latest_answers(found))
            truncated = truncated or found.truncated
        for task in page.matches:
            yield _row(task, related, answers)
    return truncated or tasks.truncated


def record_answers(
    rows: list[AuthorizationRow], run: Callable[[dict[str, Any]], Any], actor: str | None = None
) -> tuple[list[AuthorizationRow], list[str]]:
    """Record each answer not yet on its Task with ``run`` (the prior-auth workflow's ``run``).

    Each Task is its own run (its own If-Match, transaction and Provenance), so one refusal, such as
    a colleague's change in between, leaves the others recorded. Returns the rows as they are now
    and one line per refusal.
    """
    updated: list[AuthorizationRow] = []
    refused: list[str] = []
    for row in rows:
        if not row.to_record:
            updated.append(row)
            continue
        payload: dict[str, Any] = {
            "action": "record-decision",
            "task": row.task,
            "claim_response": row.claim_response,
        }
        if actor:
            payload["actor"] = actor
        try:
            run(payload)
        except FhircareError as exc:
            refused.append(f"{row.task}: {exc}")
            updated.append(row)
            continue
        updated.append(replace(row, recorded=True, status=TASK_STATUS.get(row.decision, row.status)))
    return updated, refused
