"""``fhircare worklist``, ``summary``: the coordinator's questions on the command line."""

from __future__ import annotations

import click

from .context import Context, pass_context
from .output import emit_json, render_rows

FORMATS = click.Choice(["table", "json", "csv"])


def register(cli: click.Group) -> None:
    from .main import handles_errors

    @cli.command("worklist")
    @click.option("--owner", "owners", multiple=True, help="Owner reference (repeat for a team).")
    @click.option(
        "--status", "statuses", multiple=True, help="Task status (repeatable; default: all open ones)."
    )
    @click.option("--due-before", help="Only tasks due before this date (YYYY-MM-DD).")
    @click.option("--patient", help="Only this patient's tasks (Patient/id).")
    @click.option("--page-size", type=int, default=None, help="Tasks per server page.")
    @click.option("--format", "fmt", type=FORMATS, default="table")
    @pass_context
    @handles_errors
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
        from ..views.worklist import COLUMNS, OPEN_STATUSES, worklist

        with obj.client() as client:
            rows = worklist(
                client,
                owners=owners,
                statuses=statuses or OPEN_STATUSES,
                patient=patient,
                due_before=due_before,
                page_size=page_size or obj.settings.page_size,
            )
        render_rows([r.as_dict() for r in rows], COLUMNS, fmt)

    @cli.command("summary")
    @click.argument("patient")
    @click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
    @pass_context
    @handles_errors
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

    @cli.command("history")
    @click.argument("patient")
    @click.option("--format", "fmt", type=FORMATS, default="table")
    @pass_context
    @handles_errors
    def history_command(obj: Context, patient: str, fmt: str) -> None:
        """What fhircare did for a patient, from its Provenance records."""
        from ..views.history import COLUMNS, patient_history

        with obj.client() as client:
            rows = patient_history(client, patient)
        render_rows([r.as_dict() for r in rows], COLUMNS, fmt)
