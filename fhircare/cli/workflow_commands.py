"""``fhircare run``, ``fhircare workflows``, ``fhircare undo-complete``: the workflow face of the CLI."""

from __future__ import annotations

import sys
from typing import IO, Any

import click

from ..mapping.validate import parse_payload
from .context import Context, pass_context
from .output import emit_json, render_rows


def read_payload(stream: IO[str]) -> dict[str, Any]:
    return parse_payload(stream.read())


@click.command("run")
@click.argument("workflow")
@click.argument("payload_file", type=click.File("r"), default="-")
@click.option(
    "--dry-run", is_flag=True, help="Print the transaction Bundle that would be sent; write nothing."
)
@pass_context
def run_command(obj: Context, workflow: str, payload_file: IO[str], dry_run: bool) -> None:
    """Run WORKFLOW with the JSON payload in PAYLOAD_FILE (or - for standard input)."""
    from ..workflows import get_workflow

    with obj.client() as client:
        instance = get_workflow(workflow, client, obj.settings)
        result = instance.run(read_payload(payload_file), dry_run=dry_run)
    emit_json(result.details["bundle"] if dry_run else result.to_json())


@click.command("workflows")
@click.argument("workflow", required=False)
@click.option("--schema", is_flag=True, help="Print the workflow's input JSON Schema.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@pass_context
def workflows_command(obj: Context, workflow: str | None, schema: bool, fmt: str) -> None:
    """List the workflows, or show one workflow's input schema."""
    from ..errors import UnknownWorkflow
    from ..mapping.validate import workflow_schema
    from ..workflows import catalogue, describe, mappings_for

    if workflow is None:
        render_rows(describe(obj.settings), ["workflow", "description"], fmt)
        return
    mappings = mappings_for(obj.settings)
    known = catalogue(mappings)
    if workflow not in known:
        raise UnknownWorkflow(f"unknown workflow {workflow!r}; known: {', '.join(sorted(known))}")
    if schema:
        emit_json(workflow_schema(obj.settings.profiles_dir, workflow, mappings.schemas.get(workflow)))
    else:
        cls = known[workflow]
        click.echo(f"{workflow}: {cls.description}")
        click.echo(f"input schema: fhircare workflows {workflow} --schema")
        sys.stdout.flush()


@click.command("undo-complete")
@click.argument("task")
@click.option("--actor", help="Who undoes it (Practitioner/<id>): the Provenance's agent.")
@click.option("--reason", help="Why the completion is undone (kept in the note saying so).")
@click.option("--version", help="Refuse unless the Task is still at this version (the one completed).")
@click.option("--request-id", help="Idempotency key: the same id never undoes twice.")
@pass_context
def undo_complete_command(
    obj: Context,
    task: str,
    actor: str | None,
    reason: str | None,
    version: str | None,
    request_id: str | None,
) -> None:
    """Undo the completion of TASK (Task/<id>) within the undo window (FHIRCARE_UNDO_WINDOW_MINUTES):
    the status before it comes back, a referral's ServiceRequest is active again."""
    from ..workflows import get_workflow

    given = {"actor": actor, "reason": reason, "version": version, "request_id": request_id}
    payload = {"task": task, **{k: v for k, v in given.items() if v}}
    with obj.client() as client:
        result = get_workflow("undo-complete", client, obj.settings).run(payload)
    emit_json(result.to_json())


COMMANDS = [run_command, workflows_command, undo_complete_command]
