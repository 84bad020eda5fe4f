"""OpenAPI 3.1 of the sidecar, generated from the same JSON Schemas the workflows validate with."""

from __future__ import annotations

import json
from typing import Any

from ..settings import Settings
from .openapi_exchange import exchange_paths
from .openapi_views import view_paths

DEFS_ID = "urn:fhircare:defs"


def _rewrite_refs(node: Any) -> Any:
    """Point ``urn:fhircare:defs#/$defs/X`` and local ``#/$defs/X`` at ``#/components/schemas/X``."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key in ("$id", "$schema"):
                continue
            if key == "$ref" and isinstance(value, str) and "#/$defs/" in value:
                out[key] = "#/components/schemas/" + value.rsplit("/", 1)[-1]
            else:
                out[key] = _rewrite_refs(value)
        return out
    if isinstance(node, list):
        return [_rewrite_refs(v) for v in node]
    return node


def _outcome_response(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/fhir+json": {"schema": {"$ref": "#/components/schemas/OperationOutcome"}}},
    }


ERRORS = {
    "400": "Malformed request",
    "401": "Not signed in",
    "403": "Scopes or patient context do not allow it",
    "404": "Not found",
    "409": "Conflict or illegal transition",
    "412": "Precondition failed",
    "422": "Payload invalid; every failing JSON path is listed",
    "502": "The FHIR server failed",
    "503": "The FHIR server is unavailable",
}


def openapi_document(settings: Settings) -> dict[str, Any]:
    from ..workflows import WORKFLOWS

    workflows_dir = settings.profiles_dir / "workflows"
    defs = json.loads((workflows_dir / "_defs.schema.json").read_text(encoding="utf-8"))["$defs"]
    schemas: dict[str, Any] = {name: _rewrite_refs(schema) for name, schema in defs.items()}
    schemas["OperationOutcome"] = {
        "type": "object",
        "required": ["resourceType", "issue"],
        "properties": {
            "resourceType": {"const": "OperationOutcome"},
            "issue": {"type": "array", "items": {"type": "object"}},
        },
    }
    schemas["WorkflowResult"] = {
        "type": "object",
        "required": ["workflow", "request_id", "written"],
        "properties": {
            "workflow": {"type": "string"},
            "request_id": {"type": "string"},
            "written": {"type": "array", "items": {"type": "string"}},
            "created": {"type": "array", "items": {"type": "string"}},
            "updated": {"type": "array", "items": {"type": "string"}},
            "repeated": {"type": "boolean"},
        },
    }
    errors = {code: _outcome_response(text) for code, text in ERRORS.items()}
    paths: dict[str, Any] = {}
    for name, cls in sorted(WORKFLOWS.items()):
        schema_name = f"workflow-{name}"
        schemas[schema_name] = _rewrite_refs(
            json.loads((workflows_dir / f"{name}.schema.json").read_text(encoding="utf-8"))
        )
        paths[f"/api/v1/workflows/{name}"] = {
            "post": {
                "operationId": f"run_{name.replace('-', '_')}",
                "summary": cls.description,
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": {"$ref": f"#/components/schemas/{schema_name}"}}
                    },
                },
                "responses": {
                    "201": {
                        "description": "Written",
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/WorkflowResult"}}
                        },
                    },
                    "200": {
                        "description": "Idempotent repeat: nothing new written",
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/WorkflowResult"}}
                        },
                    },
                    **errors,
                },
            }
        }
    transition = {k: v for k, v in schemas["workflow-task"].items() if k not in ("required",)}
    transition["properties"] = {k: v for k, v in transition["properties"].items() if k != "task"}
    schemas["TaskTransition"] = transition
    paths["/api/v1/tasks/{task_id}/transition"] = {
        "post": {
            "operationId": "transition_task",
            "summary": "Move a task along its state machine or reassign it",
            "parameters": [
                {
                    "name": "task_id",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "pattern": "^[A-Za-z0-9.-]{1,64}$"},
                }
            ],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/TaskTransition"}}},
            },
            "responses": {
                "201": {
                    "description": "Written",
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/WorkflowResult"}}
                    },
                },
                "200": {"description": "Idempotent repeat"},
                **errors,
            },
        }
    }
    paths.update(view_paths(errors))
    paths.update(exchange_paths(errors))
    for path, summary in (("/healthz", "Process up"), ("/readyz", "FHIR server reachable")):
        paths[path] = {
            "get": {
                "operationId": path.strip("/"),
                "summary": summary,
                "responses": {"200": {"description": "OK"}, "503": {"description": "Not ready"}},
            }
        }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "fhircare sidecar",
            "version": "0.1.0",
            "description": "Care coordinators' workflows and views over a FHIR R4 server.",
        },
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "paths": paths,
        "components": {"schemas": schemas},
    }
