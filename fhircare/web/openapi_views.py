"""OpenAPI 3.1 of the sidecar's read endpoints: the views (worklist, summary, gaps, caseload, ...), the
directory and the lookup."""

from __future__ import annotations

from typing import Any


def view_paths(errors: dict[str, Any]) -> dict[str, Any]:
    """The paths of the views, each answering the sidecar's ``errors`` besides its own."""
    paths: dict[str, Any] = {}
    ref_param = {"schema": {"type": "string", "pattern": "^[A-Z][A-Za-z]+/[A-Za-z0-9.-]{1,64}$"}}
    page_size_param = {
        "name": "page_size",
        "in": "query",
        "description": (
            "Rows per FHIR search page. Default: FHIRCARE_PAGE_SIZE where the deployment sets it, else "
            "adaptive paging: pages as large as the FHIR server allows (1,000, or the maximum it declares "
            "or shows), _total=none once its next links are seen to work"
        ),
        "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
    }
    envelope_param = {
        "name": "envelope",
        "in": "query",
        "description": "true: answer {rows, truncated} instead of the bare array of rows",
        "schema": {"type": "boolean", "default": False},
    }
    row_array = {"type": "array", "items": {"type": "object"}}
    view_rows = {
        "200": {
            "description": (
                "Rows: the array, or with envelope=true {rows, truncated}. truncated (and the "
                "Fhircare-Truncated header) is true when paging stopped before the end: the FHIR server "
                "reported more results than it returned and offered no way on (no next link, _offset ignored)"
            ),
            "headers": {
                "Fhircare-Truncated": {
                    "description": "true when paging stopped before the end, else false",
                    "schema": {"type": "string", "enum": ["true", "false"]},
                }
            },
            "content": {
                "application/json": {
                    "schema": {
                        "oneOf": [
                            row_array,
                            {
                                "type": "object",
                                "required": ["rows", "truncated"],
                                "properties": {"rows": row_array, "truncated": {"type": "boolean"}},
                                "additionalProperties": False,
                            },
                        ]
                    }
                }
            },
        },
        **errors,
    }
    paths["/api/v1/worklist"] = {
        "get": {
            "operationId": "worklist",
            "summary": "Open tasks, overdue first, then priority, then due date",
            "parameters": [
                {"name": "owner", "in": "query", **ref_param},
                {"name": "patient", "in": "query", **ref_param},
                {
                    "name": "status",
                    "in": "query",
                    "schema": {
                        "type": "string",
                        "enum": [
                            "draft",
                            "requested",
                            "received",
                            "accepted",
                            "ready",
                            "in-progress",
                            "on-hold",
                            "completed",
                            "cancelled",
                            "rejected",
                            "failed",
                        ],
                    },
                },
                {"name": "due_before", "in": "query", "schema": {"type": "string", "format": "date"}},
                page_size_param,
                envelope_param,
            ],
            "responses": view_rows,
        }
    }
    paths["/api/v1/patients/{patient_id}/summary"] = {
        "get": {
            "operationId": "summary",
            "summary": "One patient at a glance (one FHIR batch)",
            "parameters": [
                {
                    "name": "patient_id",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "pattern": "^[A-Za-z0-9.-]{1,64}$"},
                }
            ],
            "responses": {
                "200": {
                    "description": "Patient summary",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                },
                **errors,
            },
        }
    }
    rows = {
        "200": {
            "description": "Rows",
            "content": {"application/json": {"schema": {"type": "array", "items": {"type": "object"}}}},
        },
        **errors,
    }
    for path, operation, summary, names, paged in (
        (
            "/api/v1/gaps",
            "gaps",
            "Care gaps from the rules in rules/ (FHIRPath)",
            ("owner", "patient"),
            False,
        ),
        (
            "/api/v1/caseload",
            "caseload",
            "Per coordinator: patients, open and overdue tasks, referrals",
            (),
            False,
        ),
        (
            "/api/v1/authorizations",
            "authorizations",
            "Open prior-authorization Tasks with the payers' answers (ClaimResponse)",
            ("patient", "requester"),
            True,
        ),
    ):
        paths[path] = {
            "get": {
                "operationId": operation,
                "summary": summary,
                "parameters": [
                    *({"name": name, "in": "query", **ref_param} for name in names),
                    *([page_size_param] if paged else []),
                    envelope_param,
                ],
                "responses": view_rows,
            }
        }
    text_param = {"schema": {"type": "string", "maxLength": 100}}
    paths["/api/v1/directory"] = {
        "get": {
            "operationId": "directory",
            "summary": "Services to refer to (HealthcareService with its Organization and Locations)",
            "parameters": [
                {"name": "category", "in": "query", **text_param},
                {"name": "type", "in": "query", **text_param},
                {"name": "name", "in": "query", **text_param},
                {
                    "name": "near",
                    "in": "query",
                    "description": "postal code (or its start) or city",
                    **text_param,
                },
                page_size_param,
                envelope_param,
            ],
            "responses": view_rows,
        }
    }
    paths["/api/v1/lookup"] = {
        "get": {
            "operationId": "lookup",
            "summary": "Choices for a picker: {reference, label} of one shared type by name",
            "parameters": [
                {
                    "name": "type",
                    "in": "query",
                    "required": True,
                    "schema": {
                        "enum": [
                            "Practitioner",
                            "PractitionerRole",
                            "Organization",
                            "Location",
                            "HealthcareService",
                        ]
                    },
                },
                {"name": "name", "in": "query", **text_param},
            ],
            "responses": rows,
        }
    }
    return paths
