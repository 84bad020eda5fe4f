"""``fhircare demo``: the README's main command."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

import click

from .. import clock
from ..settings import Settings
from .context import Context, pass_context
from .export_progress import ExportProgress
from .output import table

# from this many patients on, the demo reads gaps and the caseload through Bulk Data $export (when the
# server offers it), as a coordinator's organization would for whole-caseload analytics
BULK_FROM = 1000


@contextmanager
def phase(label: str) -> Iterator[None]:
    """One phase of the demo on stderr: what starts, then how long it took."""
    click.echo(f"-> {label}", err=True)
    started = time.perf_counter()
    yield
    click.echo(f"   done in {time.perf_counter() - started:.1f} s", err=True)


@click.command("demo")
@click.option("--patients", type=click.IntRange(6, 10000), default=60, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True, help="Same seed, same caseload.")
@click.option("--keep-running", is_flag=True, help="Keep the embedded server up to explore afterwards.")
@click.option(
    "--bulk/--no-bulk",
    default=None,
    help=f"Gaps and caseload through $export (default: from {BULK_FROM} patients on).",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 8),
    default=1,
    show_default=True,
    help="Processes seeding patients side by side, each with its own client (same caseload with any number).",
)
@pass_context
def demo_command(
    obj: Context, patients: int, seed: int, keep_running: bool, bulk: bool | None, workers: int
) -> None:
    """Seed a synthetic caseload through the workflows, then play one coordinator's morning."""
    from ..demo import Seeder, play_morning
    from ..views.summary import patient_summary
    from ..views.worklist import COLUMNS, worklist
    from .check import check_server, render_check
    from .render_summary import render_summary

    today = clock.today()
    with obj.server_or_base() as client:
        with phase("Checking what the server supports"):
            click.echo(render_check(check_server(client)))
        use_bulk = patients >= BULK_FROM if bulk is None else bulk
        started = time.perf_counter()
        seeder = Seeder(client, seed, today)
        by = f" ({workers} worker processes)" if workers > 1 else ""
        with (
            phase(f"Seeding {patients} patients through the workflows{by}"),
            click.progressbar(length=patients, label="Seeding", file=sys.stderr) as bar,
        ):
            world = seeder.seed_all(
                patients, bar.update, workers, partial(_worker_client, obj.settings, client.base_url)
            )
        seconds = time.perf_counter() - started
        click.echo(
            f"Seeded {len(world.patients)} patients, 3 coordinators: {world.runs} workflow runs, "
            f"{world.requests} requests, {seconds:.1f} s ({world.requests / max(world.runs, 1):.2f} requests per run)"
        )
        coordinator = world.coordinators[0]
        with phase(f"Worklist of {coordinator}"):
            rows = worklist(client, owners=[coordinator], today=today)
        click.echo(f"\n== Worklist of {coordinator} (top 12) ==")
        click.echo(table([r.as_dict() for r in rows[:12]], [c for c in COLUMNS if c != "patient"]))
        with phase(f"Care gaps of {coordinator}'s patients{' ($export)' if use_bulk else ''}"):
            gaps_before = _gaps(client, coordinator, today, use_bulk)
        click.echo("\n== The morning ==")
        with phase("The morning"):
            for step in play_morning(client, world, today):
                kinds = ", ".join(sorted({r.split("/")[0] for r in step.written}))
                click.echo(f"  {step.what}: wrote {len(step.written)} resources ({kinds})")
        with phase(f"Care gaps again{' ($export)' if use_bulk else ''}"):
            gaps_after = _gaps(client, coordinator, today, use_bulk)
        before = {(g["rule"], g["resource"]) for g in gaps_before}
        after = {(g["rule"], g["resource"]) for g in gaps_after}
        click.echo(f"\n== Care gaps: {len(before - after)} closed this morning, {len(after)} still open ==")
        by_rule: dict[str, int] = {}
        for g in gaps_after:
            by_rule[g["title"]] = by_rule.get(g["title"], 0) + 1
        for title, count in sorted(by_rule.items(), key=lambda kv: -kv[1]):
            click.echo(f"  {count:>3}  {title}")
        with phase("Patient summary"):
            summary = render_summary(patient_summary(client, world.patients[0]))
        click.echo("\n== Patient summary ==")
        click.echo(summary)
        with phase(f"Caseload{' ($export)' if use_bulk else ''}"):
            caseload_table = _caseload(client, today, use_bulk)
        click.echo("\n== Caseload ==")
        click.echo(caseload_table)
        click.echo(f"\nFHIR server: {client.base_url}")
        obj.maybe_keep_running(keep_running)


COMMANDS = [demo_command]


def _worker_client(settings: Settings, base_url: str) -> Any:
    """A seeding worker's own client, configured as this command's (runs in the worker process)."""
    return Context(settings).client(base_url)


def _gaps(client: Any, owner: str, today: Any, bulk: bool) -> list[dict[str, Any]]:
    from ..views.gaps import find_gaps

    with ExportProgress("Reading the export") as progress:
        gaps = find_gaps(client, owner=owner, today=today, bulk=bulk, listener=progress)
    return [{"rule": g.rule, "title": g.title, "resource": g.resource} for g in gaps]


def _caseload(client: Any, today: Any, bulk: bool) -> str:
    from ..views.caseload import COLUMNS, caseload

    with ExportProgress("Reading the export") as progress:
        rows = caseload(client, today=today, bulk=bulk, listener=progress)
    return table([r.as_dict() for r in rows], COLUMNS)
