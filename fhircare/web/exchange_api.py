"""``/api/v1/exchange``: referrals between organizations, as ``fhircare exchange`` has them.

- ``POST /api/v1/exchange/send`` ``{"task": "Task/<id>"}`` -> ``{"task", "partner", "remote", "created"}``
  (201 when the partner's Task was created, 200 when it was already there);
- ``GET /api/v1/exchange/status[?partner=P]`` -> the rows of ``exchange status --json`` (a patient
  session: its patient's rows only); ``Fhircare-Conflicts`` says how many rows hold an open conflict;
- ``POST /api/v1/exchange/cancel`` ``{"task", "reason"}`` -> 200 cancelled, 202 pending (partner down),
  409 conflict (an OperationOutcome naming both sides' status and version);
- ``POST /api/v1/exchange/resolve`` ``{"task", "take": "local"|"remote"}``;
- ``POST /api/v1/exchange/hook/<partner>``: a partner's notification. ``Authorization: Bearer
  <the partner's secret>`` or 401 and nothing runs; it only wakes that partner's sync.

Errors map as the CLI's exit codes do: bad input (exit 2) -> 400 naming the JSON path; an unknown
Task -> 404, an unknown partner -> 404; a clash (exit 4) -> 409. In a patient session a Task of another
patient, or none, is one 403 and nothing is sent.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response, jsonify, request

from ..errors import FhircareError, Issue, NotFound, PayloadError, UnresolvedReference
from .api import json_body, settings
from .app import error_response, outcome_response
from .compartment import PatientGuard
from .exchange_runtime import sidecar_exchange
from .fhir_access import access, patient_in_context, require_scopes
from .policy import POLICY, Rule

if TYPE_CHECKING:
    from ..exchange import Exchange
    from ..exchange.cancel import Cancelled

exchange_api = Blueprint("exchange_api", __name__)
PREFIX = "/api/v1/exchange"
CONFLICTS_HEADER = "Fhircare-Conflicts"
#: a cancel's reason goes to the partner's Task (statusReason) and stays on our pending cancel
CANCEL_REASON_LIMIT = 200

# the access policy of these routes (policy.py's one table): writes are checked here, as workflow runs
POLICY.update(
    {
        "exchange_api.send": Rule("guard"),
        "exchange_api.cancel": Rule("guard"),
        "exchange_api.resolve": Rule("guard"),
        "exchange_api.status": Rule("own", frozenset({"Task"})),
        "exchange_api.hook": Rule("public"),  # the partner's secret is checked by the route
        "metrics": Rule("public"),  # only served with FHIRCARE_METRICS=1
    }
)


@exchange_api.errorhandler(PayloadError)
@exchange_api.errorhandler(UnresolvedReference)
def bad_input(exc: FhircareError) -> Response:
    """Bad input is 400 here (the CLI's exit 2), naming the JSON path where one is known."""
    if not exc.issues:  # the body as a whole (not JSON, not an object)
        exc.issues = (Issue("error", exc.code, exc.message, ("$",)),)
    response = error_response(exc)
    response.status_code = 400
    return response


def _text(body: dict[str, Any], name: str, limit: int = 1000) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value.strip():
        raise PayloadError(
            f"{name} is required (a non-empty string)", [Issue("error", "required", name, (f"$.{name}",))]
        )
    if len(value) > limit:
        raise PayloadError(f"{name} is too long", [Issue("error", "too-long", name, (f"$.{name}",))])
    return value


def _task_of(body: dict[str, Any]) -> str:
    """The id of ``$.task`` (``Task/<id>``)."""
    reference = _text(body, "task", 200)
    kind, _, rid = reference.partition("/")
    if kind != "Task" or not rid or "/" in rid or not all(c.isalnum() or c in "-." for c in rid):
        raise PayloadError(
            f"expected Task/<id>, got {reference!r}", [Issue("error", "value", "Task/<id>", ("$.task",))]
        )
    return rid


def _known_fields(body: dict[str, Any], allowed: set[str]) -> None:
    extra = sorted(set(body) - allowed)
    if extra:
        raise PayloadError(
            "unknown fields", [Issue("error", "structure", "not allowed", (f"$.{k}",)) for k in extra]
        )


@contextmanager
def _exchange(client: Any | None = None) -> Iterator[Exchange]:
    """The caller's Exchange: our server through the caller's client, the partners' through theirs."""
    from ..exchange import Exchange, check_organizations

    holder = sidecar_exchange()
    partners = holder.require()
    local = client if client is not None else access().client_for_request()
    with Exchange(settings(), partners, local) as exchange:
        if not holder.checked:  # a file naming an Organization we lack is refused (once per process)
            check_organizations(partners, local)
            holder.checked = True
        yield exchange


def own_task(task_id: str) -> None:
    """A patient session acts only on its patient's Tasks: another patient's, or none, is one 403."""
    patient = patient_in_context()
    if patient is None:
        return
    # one 403 for another patient's Task and for none at all (no answer tells which)
    PatientGuard(access().client_for_request(), patient).check_references({f"Task/{task_id}"})


#: fhircare's sync state per partner (cursor, pending cancels, open conflicts: cursor.py), on our server
SYNC_STATE = "Basic"


def writes(action: str) -> tuple[frozenset[str], frozenset[str]]:
    """What each exchange route may write on our server, as (created types, updated types): the one
    table the routes check scopes against, as a workflow's ``created_types``/``updated_types`` are.

    - send: the link on our Task;
    - cancel: the partner's versions caught up first (our Task, a copy of each outcome, our
      ServiceRequest completed, a Provenance, a conflict Task for the requester, the sync state), then
      our Task cancelled, our ServiceRequest revoked and a Provenance;
    - resolve: our Task (the remote side's outputs copied), the conflict Task completed, a Provenance,
      the sync state.
    """
    from ..exchange.copies import OUTCOME_TYPES

    if action == "send":
        return frozenset(), frozenset({"Task"})
    caught_up = frozenset({"Provenance", "Task", SYNC_STATE}) | OUTCOME_TYPES
    if action == "cancel":
        return caught_up, frozenset({"Task", "ServiceRequest", SYNC_STATE})
    if action == "resolve":
        return frozenset({"Provenance", SYNC_STATE}) | OUTCOME_TYPES, frozenset({"Task", SYNC_STATE})
    raise KeyError(action)


def require_writes(action: str) -> None:
    """403 unless the caller's scopes cover everything ``action`` may write ('r' and 'u' on Task, 'c'
    and 'u' as ``writes`` says): checked before anything is read or written, here or at the partner."""
    creates, updates = writes(action)
    require_scopes({"Task"}, "r")
    require_scopes(creates, "c")
    require_scopes(updates, "u")


def _write_checks(body: dict[str, Any], fields: set[str], action: str) -> str:
    """Before anything is read or written, here or at the partner: the scopes of everything the action
    may write ('r' and 'u' on Task, 'c' and 'u' as ``writes`` says), the payload, then the patient rule."""
    require_writes(action)
    _known_fields(body, fields)
    task_id = _task_of(body)
    own_task(task_id)
    return task_id


def _partner_of(name: str | None) -> str | None:
    if name is not None and name not in sidecar_exchange().require().partners:
        raise NotFound(f"no partner named {name!r}")
    return name


@exchange_api.post(f"{PREFIX}/send")
def send() -> tuple[Response, int]:
    from ..exchange import send as send_task

    body = json_body()
    task_id = _write_checks(body, {"task"}, "send")
    with _exchange() as exchange:
        sent = send_task(exchange, task_id)
    sidecar_exchange().count_sent(sent.partner, sent.created)
    return jsonify(sent.to_json()), 201 if sent.created else 200


@exchange_api.get(f"{PREFIX}/status")
def status() -> Response:
    from ..exchange import referrals

    partner = _partner_of(request.args.get("partner") or None)
    # a patient session reads through the compartment filter: other patients' Tasks never reach the rows
    with _exchange(access().view_client()) as exchange:
        rows = referrals(exchange, partner)
    answer = jsonify(rows)
    answer.headers[CONFLICTS_HEADER] = str(sum(1 for row in rows if row["conflict"]))
    return answer


def cancel_referral(task_id: str, reason: str) -> Cancelled:
    """Cancel our Task as ``exchange cancel`` does (the partner's Task first), once the caller passed
    ``require_writes("cancel")`` and ``own_task``: the route below and the console's task page."""
    from ..exchange import cancel as cancel_task

    with _exchange() as exchange:
        return cancel_task(exchange, task_id, reason)


def resolve_conflict(task_id: str, take: str) -> dict[str, Any]:
    """End our Task's conflict, taking ``local`` or ``remote``, once the caller passed
    ``require_writes("resolve")`` and ``own_task``: the route below and the console's task page."""
    from ..exchange import resolve as resolve_task

    with _exchange() as exchange:
        return resolve_task(exchange, task_id, take)


@exchange_api.post(f"{PREFIX}/cancel")
def cancel() -> tuple[Response, int]:
    body = json_body()
    task_id = _write_checks(body, {"task", "reason"}, "cancel")
    result = cancel_referral(task_id, _text(body, "reason", CANCEL_REASON_LIMIT))
    if result.outcome == "conflict" and result.conflict is not None:
        clash = result.conflict.to_json()
        return conflict_answer(
            f"Task/{task_id}: the partner's Task is already {clash['remote']['status']} "
            f"(version {clash['remote']['version']}); ours is {clash['local']['status']} "
            f"(version {clash['local']['version']}). Nothing changed; resolve the conflict."
        ), 409
    return jsonify(result.to_json()), 202 if result.outcome == "pending" else 200


@exchange_api.post(f"{PREFIX}/resolve")
def resolve() -> Response:
    body = json_body()
    task_id = _write_checks(body, {"task", "take"}, "resolve")
    take = body.get("take")
    if take not in ("local", "remote"):
        raise PayloadError(
            "take must be local or remote", [Issue("error", "value", "local | remote", ("$.take",))]
        )
    return jsonify(resolve_conflict(task_id, str(take)))


@exchange_api.route(f"{PREFIX}/hook/<partner>", methods=["POST", "PUT"])
def hook(partner: str) -> tuple[Response, int]:
    """A notification: the partner's secret or 401; its content is never read, it only wakes a sync."""
    holder = sidecar_exchange()
    partners = holder.require()
    if partner not in partners.partners:
        raise NotFound("no such hook")
    import hmac

    expected = dict(settings().partner_tokens).get(partners.get(partner).notify_secret_env or "")
    sent = request.headers.get("Authorization", "")
    if (
        not expected
        or not sent.startswith("Bearer ")
        or not hmac.compare_digest(sent[7:].strip().encode(), expected.encode())
    ):
        holder.count_notification(partner, "refused")
        return outcome_response(401, _outcome("login", "wrong or missing secret")), 401
    holder.count_notification(partner, "accepted")
    holder.wake(partner)
    return jsonify({}), 200


def conflict_answer(text: str) -> Response:
    return outcome_response(409, _outcome("conflict", text))


def _outcome(code: str, text: str) -> dict[str, Any]:
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": code, "diagnostics": text}],
    }
