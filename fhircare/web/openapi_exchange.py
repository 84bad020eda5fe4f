"""OpenAPI 3.1 of ``/api/v1/exchange`` (exchange_api.py): send, status, cancel, resolve, the hook."""

from __future__ import annotations

from typing import Any

TASK_REF = {"type": "string", "pattern": "^Task/[A-Za-z0-9.-]{1,64}$"}


def _body(properties: dict[str, Any]) -> dict[str, Any]:
    schema = {
        "type": "object",
        "required": sorted(properties),
        "properties": properties,
        "additionalProperties": False,
    }
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _ok(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {"type": "object"}}}}


def exchange_paths(errors: dict[str, Any]) -> dict[str, Any]:
    """The exchange routes; bad input is 400 here (the CLI's exit 2), a clash 409."""
    base = "/api/v1/exchange"
    return {
        f"{base}/send": {
            "post": {
                "operationId": "exchange_send",
                "summary": "Create the partner's Task for ours, exactly once, and link it",
                "requestBody": _body({"task": TASK_REF}),
                "responses": {
                    "201": _ok("{task, partner, remote, created: true}"),
                    "200": _ok("Already there: {task, partner, remote, created: false}"),
                    **errors,
                },
            }
        },
        f"{base}/status": {
            "get": {
                "operationId": "exchange_status",
                "summary": "Every sent referral, both sides' status (a patient session: its own)",
                "parameters": [{"name": "partner", "in": "query", "schema": {"type": "string"}}],
                "responses": {
                    "200": {
                        "description": "The rows of `fhircare exchange status --json`",
                        "headers": {"Fhircare-Conflicts": {"schema": {"type": "string"}}},
                        "content": {
                            "application/json": {"schema": {"type": "array", "items": {"type": "object"}}}
                        },
                    },
                    **errors,
                },
            }
        },
        f"{base}/cancel": {
            "post": {
                "operationId": "exchange_cancel",
                "summary": "Cancel at the partner first (If-Match), then here",
                "requestBody": _body({"task": TASK_REF, "reason": {"type": "string", "maxLength": 200}}),
                "responses": {
                    "200": _ok("Cancelled on both sides"),
                    "202": _ok("Partner unreachable: cancel pending"),
                    **errors,
                },
            }
        },
        f"{base}/resolve": {
            "post": {
                "operationId": "exchange_resolve",
                "summary": "End a conflict by taking our side or the partner's",
                "requestBody": _body({"task": TASK_REF, "take": {"enum": ["local", "remote"]}}),
                "responses": {"200": _ok("{task, took, status}"), **errors},
            }
        },
        f"{base}/hook/{{partner}}": {
            "post": {
                "operationId": "exchange_hook",
                "summary": "A partner's notification (Authorization: Bearer <its secret>); wakes its sync",
                "parameters": [
                    {"name": "partner", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "responses": {"200": _ok("Woken"), **errors},
            }
        },
    }
