"""``fhircare`` console script."""

from __future__ import annotations

import logging
from typing import Any

import click

from .. import __version__
from ..errors import FhircareError
from ..settings import DEFAULT_EMBEDDED_PORT, Settings
from . import (
    demo_command,
    directory_command,
    exchange_commands,
    gap_commands,
    serve_commands,
    view_commands,
    workflow_commands,
)
from .context import Context, pass_context
from .output import emit_json, fail


class FhircareGroup(click.Group):
    """The ``fhircare`` group: every FhircareError of every command becomes one line and its exit code,
    here and only here."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except FhircareError as exc:
            fail(exc)
            return None


@click.group(cls=FhircareGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="fhircare")
@click.option(
    "--base", "base_url", envvar="FHIRCARE_BASE_URL", help="FHIR base URL (default: embedded server)."
)
@click.option("-v", "--verbose", count=True, help="Log more (-v info, -vv debug). Logs never hold PHI.")
@click.pass_context
def cli(ctx: click.Context, base_url: str | None, verbose: int) -> None:
    """Care coordinators' workflows on FHIR R4."""
    settings = Settings.from_env(base_url=base_url)
    from ..logs import configure_logging

    configure_logging(logging.WARNING - 10 * min(verbose, 2), settings.log_json)
    ctx.obj = Context(settings, base_given=base_url is not None)


@cli.command()
@click.argument("url", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@pass_context
def check(obj: Context, url: str | None, as_json: bool) -> None:
    """Print what a FHIR server supports (CapabilityStatement and SMART configuration)."""
    from .check import check_server

    summary = check_server(obj.client(url))
    if as_json:
        emit_json(summary)
    else:
        from .check import render_check

        click.echo(render_check(summary))


@cli.group()
def server() -> None:
    """The embedded FHIR R4 server."""


@server.command("start")
@click.option("--port", type=int, default=DEFAULT_EMBEDDED_PORT, show_default=True)
@click.option(
    "--db", type=click.Path(dir_okay=False), help="Keep data in this SQLite file (default: memory)."
)
def server_start(port: int, db: str | None) -> None:
    """Run the embedded FHIR server on 127.0.0.1 until interrupted."""
    from ..server import EmbeddedServer

    embedded = EmbeddedServer(port=port, db=db).start()
    click.echo(f"FHIR R4 server ready at {embedded.base_url} (started in {embedded.started_in:.2f} s)")
    click.echo("Press Ctrl+C to stop.")
    embedded.serve_forever()


@cli.command("smoke")
@click.option("--keep-running", is_flag=True, help="Keep the embedded server up afterwards.")
@pass_context
def smoke(obj: Context, keep_running: bool) -> None:
    """Capability summary plus a write/read round trip (on the embedded server unless --base is given)."""
    from .check import render_check, smoke_round

    with obj.server_or_base() as client:
        from .check import check_server

        click.echo(render_check(check_server(client)))
        click.echo("")
        click.echo(smoke_round(client))
        obj.maybe_keep_running(keep_running)


def _late_base(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    """``--base URL`` given after the command name: the same as before it."""
    if value is None:
        return
    obj = ctx.find_object(Context)
    if obj is not None:
        obj.settings = obj.settings.with_base(value)
        obj.base_given = True


def accept_base_everywhere(group: click.Group) -> None:
    """Let every command take ``--base URL`` after its name too (``fhircare run refer p.json --base URL``)."""
    for command in group.commands.values():
        if isinstance(command, click.Group):
            accept_base_everywhere(command)
        elif not any("--base" in getattr(p, "opts", ()) for p in command.params):
            command.params.append(
                click.Option(
                    ["--base", "late_base"],
                    expose_value=False,
                    is_eager=True,
                    callback=_late_base,
                    help="FHIR base URL (also accepted before the command).",
                )
            )


# the command tree is built here, at import: ``from fhircare.cli.main import cli`` holds every command
COMMAND_MODULES = (
    demo_command,
    directory_command,
    exchange_commands,
    gap_commands,
    serve_commands,
    view_commands,
    workflow_commands,
)
for _module in COMMAND_MODULES:
    for _command in _module.COMMANDS:
        cli.add_command(_command)
accept_base_everywhere(cli)


def main() -> None:
    """The ``fhircare`` console script."""
    cli(prog_name="fhircare")


if __name__ == "__main__":  # pragma: no cover
    main()
