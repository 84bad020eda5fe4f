"""``fhircare demo``: the README's main command."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

import click

from .context import Context, pass_context
from .output import table


def register(cli: click.Group) -> None:
    from .main import handles_errors

    @cli.command("demo")
    @click.option("--patients", type=click.IntRange(6, 2000), default=60, show_default=True)
    @click.option("--seed", type=int, default=7, show_default=True, help="Same seed, same caseload.")
    @click.option("--keep-running", is_flag=True, help="Keep the embedded server up to explore afterwards.")
    @pass_context
    @handles_errors
    def demo_command(obj: Context, patients: int, seed: int, keep_running: bool) -> None:
        """Seed a synthetic caseload through the workflows, then play one coordinator's morning."""
        from ..views.summary import patient_summary
        from ..views.worklist import COLUMNS, worklist
        from .check import check_server, render_check
        from .demo import Seeder, play_morning
        from .render_summary import render_summary

        today = datetime.now(timezone.utc).date()
        with obj.server_or_base() as client:
            click.echo(render_check(check_server(client)))
            started = time.perf_counter()
            seeder = Seeder(client, seed, today)
            with click.progressbar(
                length=patients, label=f"Seeding {patients} patients through the workflows"
            ) as bar:
                world = seeder.seed_all(patients, bar.update)
            seconds = time.perf_counter() - started
            click.echo(
                f"Seeded {len(world.patients)} patients, 3 coordinators: {world.runs} workflow runs, "
                f"{world.requests} requests, {seconds:.1f} s ({world.requests / max(world.runs, 1):.2f} requests per run)"
            )
            coordinator = world.coordinators[0]
            click.echo(f"\n== Worklist of {coordinator} (top 12) ==")
            rows = worklist(client, owners=[coordinator], today=today)
            click.echo(table([r.as_dict() for r in rows[:12]], [c for c in COLUMNS if c != "patient"]))
            gaps_before = _gaps(client, coordinator, today)
            click.echo("\n== The morning ==")
            for step in play_morning(client, world, today):
                kinds = ", ".join(sorted({r.split("/")[0] for r in step.written}))
                click.echo(f"  {step.what}: wrote {len(step.written)} resources ({kinds})")
            gaps_after = _gaps(client, coordinator, today)
            if gaps_before is not None and gaps_after is not None:
                before = {(g["rule"], g["resource"]) for g in gaps_before}
                after = {(g["rule"], g["resource"]) for g in gaps_after}
                click.echo(
                    f"\n== Care gaps: {len(before - after)} closed this morning, {len(after)} still open =="
                )
                by_rule: dict[str, int] = {}
                for g in gaps_after:
                    by_rule[g["title"]] = by_rule.get(g["title"], 0) + 1
                for title, count in sorted(by_rule.items(), key=lambda kv: -kv[1]):
                    click.echo(f"  {count:>3}  {title}")
            click.echo("\n== Patient summary ==")
            click.echo(render_summary(patient_summary(client, world.patients[0])))
            _print_caseload(client, today)
            click.echo(f"\nFHIR server: {client.base_url}")
            obj.maybe_keep_running(keep_running)


def _gaps(client: Any, owner: str, today: Any) -> list[dict[str, Any]] | None:
    try:
        from ..views.gaps import find_gaps
    except ImportError:
        return None
    return [
        {"rule": g.rule, "title": g.title, "resource": g.resource}
        for g in find_gaps(client, owner=owner, today=today)
    ]


def _print_caseload(client: Any, today: Any) -> None:
    try:
        from ..views.caseload import COLUMNS, caseload
    except ImportError:
        return
    click.echo("\n== Caseload ==")
    click.echo(table([r.as_dict() for r in caseload(client, today=today)], COLUMNS))
