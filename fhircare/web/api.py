"""``/api/v1``: the same workflows and views as the CLI, as JSON over HTTP."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify, request

from ..errors import FhircareError, PayloadError, ScopeDenied, TransientError
from ..mapping.validate import parse_payload
from ..settings import Settings
from .fhir_access import access, require_scopes, require_write_scopes

api = Blueprint("api", __name__)


def settings() -> Settings:
    found: Settings = current_app.extensions["fhircare.settings"]
    return found


def json_body() -> dict[str, Any]:
    if not request.is_json:
        raise PayloadError("the request body must be JSON (Content-Type: application/json)")
    return parse_payload(request.get_data())


def patient_in_context() -> str | None:
    launch = g.get("smart_session")
    return f"Patient/{launch.patient}" if launch is not None and launch.patient else None


def require_patient(reference: str | None) -> None:
    """A patient-launch session sees and writes only its own patient."""
    own = patient_in_context()
    if own is not None and reference != own:
        raise ScopeDenied("this session is limited to its launch patient")


@api.after_app_request
def close_clients(response: Response) -> Response:
    for client in g.pop("fhircare_clients", []):
        client.close()
    return response


@api.post("/api/v1/workflows/<name>")
def run_workflow(name: str) -> tuple[Response, int]:
    from ..workflows import get_workflow

    payload = json_body()
    client = access().client_for_request()
    workflow = get_workflow(name, client, settings())
    require_write_scopes(workflow.created_types(), set(workflow.updates_types))
    if patient_in_context() is not None:
        require_patient(workflow.patient(payload))
    result = workflow.run(payload)
    return jsonify(result.to_json()), 200 if result.repeated else 201


@api.post("/api/v1/tasks/<task_id>/transition")
def transition_task(task_id: str) -> tuple[Response, int]:
    from ..workflows import get_workflow

    body = json_body()
    payload = {**body, "task": f"Task/{task_id}"}
    client = access().client_for_request()
    workflow = get_workflow("task", client, settings())
    require_write_scopes({"Provenance"}, set(workflow.updates_types))
    if patient_in_context() is not None:
        task = client.read("Task", task_id)
        require_patient((task.get("for") or {}).get("reference"))
    result = workflow.run(payload)
    return jsonify(result.to_json()), 200 if result.repeated else 201


@api.get("/api/v1/worklist")
def get_worklist() -> Response:
    from ..views.worklist import OPEN_STATUSES, worklist

    require_scopes({"Task", "Patient"}, "r")
    patient = request.args.get("patient") or patient_in_context()
    require_patient(patient)
    rows = worklist(
        access().client_for_request(),
        owners=request.args.getlist("owner"),
        statuses=request.args.getlist("status") or OPEN_STATUSES,
        patient=patient,
        due_before=request.args.get("due_before"),
        page_size=int(request.args.get("page_size", settings().page_size)),
    )
    return jsonify([r.as_dict() for r in rows])


@api.get("/api/v1/patients/<patient_id>/summary")
def get_summary(patient_id: str) -> Response:
    from ..views.summary import patient_summary

    require_scopes({"Patient", "CarePlan", "Task", "Appointment", "Coverage"}, "r")
    require_patient(f"Patient/{patient_id}")
    return jsonify(patient_summary(access().client_for_request(), f"Patient/{patient_id}").as_dict())


@api.get("/api/v1/gaps")
def get_gaps() -> Response:
    from ..views.gaps import find_gaps

    require_scopes({"Task", "ServiceRequest", "Appointment", "CarePlan", "Coverage", "Goal"}, "r")
    patient = request.args.get("patient") or patient_in_context()
    require_patient(patient)
    gaps = find_gaps(
        access().client_for_request(), owner=request.args.get("owner"), patient=patient, settings=settings()
    )
    return jsonify([g.as_dict() for g in gaps])


@api.get("/api/v1/caseload")
def get_caseload() -> Response:
    from ..views.caseload import caseload

    require_scopes({"Task"}, "r")
    if patient_in_context() is not None:
        raise ScopeDenied("the caseload spans patients; a patient-launch session cannot see it")
    return jsonify([r.as_dict() for r in caseload(access().client_for_request())])


@api.get("/api/v1/authorizations")
def get_authorizations() -> Response:
    from ..views.authorizations import authorizations

    require_scopes({"Task", "Claim", "ClaimResponse"}, "r")
    patient = request.args.get("patient") or patient_in_context()
    require_patient(patient)
    rows = authorizations(
        access().client_for_request(),
        patient=patient,
        requester=request.args.get("requester"),
        page_size=settings().page_size,
    )
    return jsonify([r.as_dict() for r in rows])


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
        status = 503 if isinstance(exc, TransientError) else 502
        return jsonify({"status": "unavailable", "reason": exc.message.split("?")[0]}), status
    return jsonify({"status": "ready"}), 200
