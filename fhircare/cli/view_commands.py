"""``fhircare worklist``, ``summary``: the coordinator's questions on the command line."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from .context import Context, pass_context
from .output import emit_json, render_rows

if TYPE_CHECKING:
    from ..fhir import FhirClient
    from ..views.rows import Rows
    from ..views.worklist import WorklistRow

FORMATS = click.Choice(["table", "json", "csv"])


@click.command("worklist")
@click.option("--owner", "owners", multiple=True, help="Owner reference (repeat for a team).")
@click.option("--status", "statuses", multiple=True, help="Task status (repeatable; default: all open ones).")
@click.option("--due-before", help="Only tasks due before this date (YYYY-MM-DD).")
@click.option("--patient", help="Only this patient's tasks (Patient/id).")
@click.option(
    "--page-size",
    type=click.IntRange(min=1),
    default=None,
    help="Tasks per server page (default: FHIRCARE_PAGE_SIZE, else as many as the server allows).",
)
@click.option("--format", "fmt", type=FORMATS, default="table")
@pass_context
def worklist_command(
    obj: Context,
    owners: tuple[str, ...],
    statuses: tuple[str, ...],
    due_before: str | None,
    patient: str | None,
    page_size: int | None,
    fmt: str,
) -> None:
    """Open tasks, overdue first, then priority, then due date."""
    from ..views.rows import truncated
    from ..views.worklist import COLUMNS, OPEN_STATUSES, worklist

    columns: tuple[str, ...] = COLUMNS
    with obj.client() as client:
        rows = worklist(
            client,
            owners=owners,
            statuses=statuses or OPEN_STATUSES,
            patient=patient,
            due_before=due_before,
            page_size=page_size or obj.settings.page_size,
        )
        if obj.settings.partners_file is not None or obj.settings.organization:
            rows = _with_incoming(obj, client, rows, owners, statuses or OPEN_STATUSES, patient, due_before)
            columns = (*COLUMNS[:2], "requester_name", *COLUMNS[2:])
    render_rows([r.as_dict() for r in rows], columns, fmt, truncated=truncated(rows))


def _with_incoming(
    obj: Context,
    client: FhirClient,
    rows: list[WorklistRow],
    owners: tuple[str, ...],
    statuses: tuple[str, ...],
    patient: str | None,
    due_before: str | None,
) -> Rows[WorklistRow]:
    """The worklist at an organization that receives referrals (FHIRCARE_PARTNERS or
    FHIRCARE_ORGANIZATION): see :func:`fhircare.exchange.incoming.with_incoming`."""
    from ..exchange import Exchange, load_partners
    from ..exchange.incoming import with_incoming

    with Exchange(obj.settings, load_partners(obj.settings), client) as exchange:
        return with_incoming(exchange, rows, owners, statuses, patient, due_before)


@click.command("summary")
@click.argument("patient")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@pass_context
def summary_command(obj: Context, patient: str, fmt: str) -> None:
    """One patient: plans, goals, open tasks, appointments, coverage, communications, team."""
    from ..views.summary import patient_summary
    from .render_summary import render_summary

    with obj.client() as client:
        result = patient_summary(client, patient)
    if fmt == "json":
        emit_json(result.as_dict())
    else:
        click.echo(render_summary(result))


@click.command("history")
@click.argument("patient")
@click.option("--format", "fmt", type=FORMATS, default="table")
@pass_context
def history_command(obj: Context, patient: str, fmt: str) -> None:
    """What fhircare did for a patient, from its Provenance records."""
    from ..views.history import COLUMNS, patient_history

    with obj.client() as client:
        rows = patient_history(
            client, patient, page_size=obj.settings.page_size, namespaces=obj.settings.namespaces()
        )
    render_rows([r.as_dict() for r in rows], COLUMNS, fmt, truncated=rows.truncated)


@click.command("authorizations")
@click.option("--patient", help="Only this patient's prior authorizations (Patient/id).")
@click.option("--requester", help="Only those this provider requested.")
@click.option("--all", "every", is_flag=True, help="Finished ones too (default: open Tasks only).")
@click.option(
    "--record",
    is_flag=True,
    help="Record every payer answer not yet on its Task (prior-auth action record-decision).",
)
@click.option("--actor", help="Who records them (Practitioner ref, for the Provenance).")
@click.option("--format", "fmt", type=FORMATS, default="table")
@pass_context
def authorizations_command(
    obj: Context,
    patient: str | None,
    requester: str | None,
    every: bool,
    record: bool,
    actor: str | None,
    fmt: str,
) -> None:
    """Prior authorizations and the payers' answers (ClaimResponse); --record writes them onto the Tasks."""
    from ..views.authorizations import COLUMNS, authorizations, record_answers
    from ..views.rows import drain, truncated
    from ..views.worklist import OPEN_STATUSES

    with obj.client() as client:
        found = drain(
            authorizations(
                client,
                patient=patient,
                requester=requester,
                statuses=() if every else OPEN_STATUSES,
                page_size=obj.settings.page_size,
            )
        )
        rows = list(found)
        refused: list[str] = []
        if record:
            from ..workflows import get_workflow

            workflow = get_workflow("prior-auth", client, obj.settings)
            rows, refused = record_answers(rows, workflow.run, actor)
    render_rows([r.as_dict() for r in rows], COLUMNS, fmt, truncated=truncated(found))
    if record:
        done = sum(1 for r in rows if r.recorded)
        click.echo(f"{done} answer(s) on their Tasks; {len(refused)} refused.", err=True)
        for line in refused:
            click.echo(line, err=True)


COMMANDS = [worklist_command, summary_command, history_command, authorizations_command]
