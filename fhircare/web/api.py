"""``/api/v1``: the same workflows and views as the CLI, as JSON over HTTP."""

from __future__ import annotations

import math
from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify, request

from ..errors import FhircareError, PayloadError, TransientError
from ..mapping.validate import parse_payload
from ..settings import Settings
from ..views.rows import truncated
from .fhir_access import access, patient_in_context
from .runs import run_workflow as run_guarded

api = Blueprint("api", __name__)
MAX_PAGE_SIZE = 1000
#: on every answer of a view: whether paging stopped before the end (the server reported more than it
#: returned and offered no way on), so that clients of the array answers can tell a cut list too
TRUNCATED_HEADER = "Fhircare-Truncated"


def settings() -> Settings:
    found: Settings = current_app.extensions["fhircare.settings"]
    return found


def json_body() -> dict[str, Any]:
    if not request.is_json:
        raise PayloadError("the request body must be JSON (Content-Type: application/json)")
    try:
        payload = parse_payload(request.get_data())
    except ValueError:  # e.g. an integer of thousands of digits (Python's int conversion limit)
        raise PayloadError("the payload is not JSON fhircare accepts (a number is too long)") from None
    refuse_non_finite(payload)
    return payload


def refuse_non_finite(node: Any) -> None:
    """1e999 parses as infinity: refuse it here rather than write it (JSON has no infinity)."""
    if isinstance(node, float) and not math.isfinite(node):
        raise PayloadError("the payload is not JSON fhircare accepts (a number is out of range)")
    if isinstance(node, dict):
        for value in node.values():
            refuse_non_finite(value)
    elif isinstance(node, list):
        for value in node:
            refuse_non_finite(value)


def page_size_arg(default: int | None) -> int | None:
    """``page_size`` as a whole number from 1 to 1000 (else 422, never a 500); without it ``default``
    (``FHIRCARE_PAGE_SIZE``), and None without that too: pages as large as the server allows."""
    text = request.args.get("page_size")
    if text is None:
        return default
    if not text.isdigit() or not 1 <= int(text) <= MAX_PAGE_SIZE:
        raise PayloadError(f"page_size must be a whole number from 1 to {MAX_PAGE_SIZE}")
    return int(text)


def rows_answer(rows: list[dict[str, Any]], cut: bool) -> Response:
    """A view's rows: the JSON array, or with ``envelope=true`` the object ``{"rows": [...],
    "truncated": bool}`` (``truncated`` always there); the ``Fhircare-Truncated`` header either way."""
    wanted = request.args.get("envelope", "false").lower()
    if wanted not in ("0", "1", "false", "true"):
        raise PayloadError("envelope must be true or false")
    answer = jsonify({"rows": rows, "truncated": cut} if wanted in ("1", "true") else rows)
    answer.headers[TRUNCATED_HEADER] = "true" if cut else "false"
    return answer


def patient_param() -> str | None:
    """The patient a view is about: the ``patient`` parameter, else a patient session's own (the
    access policy has already refused another patient)."""
    return request.args.get("patient") or patient_in_context()


@api.after_app_request
def close_clients(response: Response) -> Response:
    for client in g.pop("fhircare_clients", []):
        client.close()
    return response


@api.post("/api/v1/workflows/<name>")
def run_workflow(name: str) -> tuple[Response, int]:
    if request.args.get("dry_run") in ("1", "true"):  # the transaction it would send; nothing written
        planned = run_guarded(name, json_body(), dry_run=True)
        return jsonify(planned.details.get("bundle") or planned.to_json()), 200
    result = run_guarded(name, json_body())
    return jsonify(result.to_json()), 200 if result.repeated else 201


@api.post("/api/v1/tasks/<task_id>/transition")
def transition_task(task_id: str) -> tuple[Response, int]:
    body = json_body()
    result = run_guarded("task", {**body, "task": f"Task/{task_id}"}, creates={"Provenance"})
    return jsonify(result.to_json()), 200 if result.repeated else 201


@api.get("/api/v1/worklist")
def get_worklist() -> Response:
    from ..views.worklist import OPEN_STATUSES, worklist
    from .callers import partner_caller

    acting = partner_caller()  # a partner's staff: their Organization's Tasks only (policy.PARTNER_ROUTES)
    rows = worklist(
        access().view_client(),
        owners=[acting.partner.organization] if acting else request.args.getlist("owner"),
        statuses=request.args.getlist("status") or OPEN_STATUSES,
        patient=patient_param(),
        due_before=request.args.get("due_before"),
        page_size=page_size_arg(settings().page_size),
    )
    return rows_answer([r.as_dict() for r in rows], truncated(rows))


@api.get("/api/v1/patients/<patient_id>/summary")
def get_summary(patient_id: str) -> Response:
    from ..views.summary import patient_summary

    return jsonify(patient_summary(access().view_client(), f"Patient/{patient_id}").as_dict())


@api.get("/api/v1/gaps")
def get_gaps() -> Response:
    from ..views.gaps import find_gaps

    gaps = find_gaps(
        access().view_client(), owner=request.args.get("owner"), patient=patient_param(), settings=settings()
    )
    return rows_answer([g.as_dict() for g in gaps], truncated(gaps))


@api.get("/api/v1/caseload")
def get_caseload() -> Response:
    from ..views.caseload import caseload

    rows = caseload(access().view_client())
    return rows_answer([r.as_dict() for r in rows], truncated(rows))


@api.get("/api/v1/authorizations")
def get_authorizations() -> Response:
    from ..views.authorizations import authorizations
    from ..views.rows import drain

    rows = drain(
        authorizations(
            access().view_client(),
            patient=patient_param(),
            requester=request.args.get("requester"),
            page_size=page_size_arg(settings().page_size),
        )
    )
    return rows_answer([r.as_dict() for r in rows], truncated(rows))


@api.get("/api/v1/directory")
def get_directory() -> Response:
    from ..views.directory import directory

    rows = directory(
        access().view_client(),
        category=request.args.get("category") or None,
        service_type=request.args.get("type") or None,
        name=request.args.get("name") or None,
        near=request.args.get("near") or None,
        page_size=page_size_arg(settings().page_size),
    )
    return rows_answer([r.as_dict() for r in rows], truncated(rows))


@api.get("/api/v1/lookup")
def lookup() -> Response:
    """What a picker offers: ``[{reference, label}]`` of one shared type whose name starts with ``name``."""
    from .pickers import search_choices

    kind = request.args.get("type", "")
    return jsonify(search_choices(access().view_client(), kind, request.args.get("name", "")))


@api.get("/api/v1/openapi.json")
def openapi() -> Response:
    from .openapi import openapi_document

    return jsonify(openapi_document(settings()))


@api.get("/healthz")
def healthz() -> Response:
    return jsonify({"status": "ok"})


@api.get("/readyz")
def readyz() -> tuple[Response, int]:
    try:
        access().shared_client().capabilities(refresh=True)
    except FhircareError as exc:
        # the reason names no address: /readyz is public, the FHIR base is not
        if isinstance(exc, TransientError):
            return jsonify({"status": "unavailable", "reason": "the FHIR server cannot be reached"}), 503
        return jsonify({"status": "unavailable", "reason": "the FHIR server answered with an error"}), 502
    from .exchange_runtime import sidecar_exchange

    ok, partners = sidecar_exchange().ready()  # the in-sidecar sync loop: partners down too long
    if not ok:
        return jsonify({"status": "unavailable", "reason": "a partner is unreachable", **partners}), 503
    return jsonify({"status": "ready"}), 200
