"""``fhircare gaps`` and ``fhircare caseload``."""

from __future__ import annotations

from datetime import date, datetime

import click

from .context import Context, pass_context
from .export_progress import ExportProgress
from .output import render_rows

FORMATS = click.Choice(["table", "json", "csv"])
BULK_HELP = "Read the whole caseload through the server's Bulk Data $export (paging when it offers none)."


@click.command("gaps")
@click.option("--owner", help="Only the patients of this owner's open tasks.")
@click.option("--patient", help="Only this patient (Patient/id).")
@click.option("--format", "fmt", type=FORMATS, default="table")
@click.option("--bulk", is_flag=True, help=BULK_HELP)
@pass_context
def gaps_command(obj: Context, owner: str | None, patient: str | None, fmt: str, bulk: bool) -> None:
    """Care gaps, from the rules in rules/gaps.yaml (and FHIRCARE_RULES)."""
    from ..views.gaps import COLUMNS, find_gaps
    from ..views.rows import truncated

    with obj.client() as client, ExportProgress() as progress:
        gaps = find_gaps(
            client, owner=owner, patient=patient, settings=obj.settings, bulk=bulk, listener=progress
        )
    render_rows([g.as_dict() for g in gaps], COLUMNS, fmt, truncated=truncated(gaps))


@click.command("caseload")
@click.option(
    "--since", type=click.DateTime(["%Y-%m-%d"]), help="Start of the period (default: 30 days ago)."
)
@click.option("--until", type=click.DateTime(["%Y-%m-%d"]), help="End of the period (default: today).")
@click.option("--format", "fmt", type=FORMATS, default="table")
@click.option("--bulk", is_flag=True, help=BULK_HELP)
@pass_context
def caseload_command(obj: Context, since: object, until: object, fmt: str, bulk: bool) -> None:
    """Per coordinator: patients, open and overdue tasks, referrals opened and closed, median days to close."""
    from ..views.caseload import COLUMNS, caseload
    from ..views.rows import truncated

    def as_date(value: object) -> date | None:
        return value.date() if isinstance(value, datetime) else None

    with obj.client() as client, ExportProgress() as progress:
        rows = caseload(client, since=as_date(since), until=as_date(until), bulk=bulk, listener=progress)
    render_rows([r.as_dict() for r in rows], COLUMNS, fmt, truncated=truncated(rows))


COMMANDS = [gaps_command, caseload_command]
