"""``fhircare directory``: the services a coordinator refers to (HealthcareService), by category, name, place."""

from __future__ import annotations

import click

from .context import Context, pass_context
from .output import render_rows


@click.command("directory")
@click.option("--category", help="Service category code (e.g. food-pantry).")
@click.option("--type", "service_type", help="Service type code.")
@click.option("--name", help="Name starts with this (case-insensitive).")
@click.option("--near", help="Postal code (or its start) or city of a location the service is offered at.")
@click.option("--all", "every", is_flag=True, help="Inactive services too.")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table")
@pass_context
def directory_command(
    obj: Context,
    category: str | None,
    service_type: str | None,
    name: str | None,
    near: str | None,
    every: bool,
    fmt: str,
) -> None:
    """Services to refer to: who offers them, where, and how to reach them."""
    from ..views.directory import COLUMNS, directory
    from ..views.rows import truncated

    with obj.client() as client:
        rows = directory(
            client,
            category=category,
            service_type=service_type,
            name=name,
            near=near,
            include_inactive=every,
            page_size=obj.settings.page_size,
        )
    render_rows([r.as_dict() for r in rows], COLUMNS, fmt, truncated=truncated(rows))


COMMANDS = [directory_command]
