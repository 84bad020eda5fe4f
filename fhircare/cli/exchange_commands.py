"""``fhircare exchange ...`` and ``fhircare sync``: referrals between organizations."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import click

from ..errors import PayloadError
from .context import Context, pass_context
from .output import emit_json

if TYPE_CHECKING:
    from ..exchange import Exchange


@contextmanager
def _exchange(obj: Context) -> Iterator[Exchange]:
    from ..exchange import Exchange, check_organizations, load_partners

    partners = load_partners(obj.settings)
    with obj.client() as local, Exchange(obj.settings, partners, local) as exchange:
        check_organizations(partners, local)  # a file naming an Organization we lack is refused here
        yield exchange


def _task_id(reference: str) -> str:
    kind, _, rid = reference.partition("/")
    if kind != "Task" or not rid or "/" in rid:
        raise PayloadError(f"expected Task/<id>, got {reference!r}")
    return rid


@click.group("exchange")
def exchange_group() -> None:
    """Referrals to partner organizations (FHIRCARE_PARTNERS)."""


@exchange_group.command("send")
@click.argument("task")
@pass_context
def send_command(obj: Context, task: str) -> None:
    """Create the partner's Task for our Task/<id>, exactly once, and link it."""
    from ..exchange import send

    with _exchange(obj) as exchange:
        emit_json(send(exchange, _task_id(task)).to_json())


@exchange_group.command("status")
@click.option("--json", "as_json", is_flag=True, help="A list of referrals, each with its conflict or null.")
@click.option("--partner", help="Only this partner.")
@pass_context
def status_command(obj: Context, as_json: bool, partner: str | None) -> None:
    """Every sent referral, both sides' status; exits 4 when a conflict is open."""
    from ..exchange import partner_states, referrals
    from ..exchange.status import render

    with _exchange(obj) as exchange:
        rows = referrals(exchange, partner)
        if as_json:
            emit_json(rows)
        else:
            click.echo(render(rows, partner_states(exchange)))
    if any(row["conflict"] for row in rows):
        sys.exit(4)


@exchange_group.command("resolve")
@click.argument("task")
@click.option("--take", type=click.Choice(["local", "remote"]), required=True)
@pass_context
def resolve_command(obj: Context, task: str, take: str) -> None:
    """End a conflict by taking our side or the partner's (with a Provenance)."""
    from ..exchange import resolve

    with _exchange(obj) as exchange:
        emit_json(resolve(exchange, _task_id(task), take))


@exchange_group.command("cancel")
@click.argument("task")
@click.option("--reason", required=True, help="Why (Task.statusReason.text).")
@pass_context
def cancel_command(obj: Context, task: str, reason: str) -> None:
    """Cancel at the partner first, then here; exits 4 when the partner's Task is already final."""
    from ..exchange import cancel

    with _exchange(obj) as exchange:
        result = cancel(exchange, _task_id(task), reason)
    emit_json(result.to_json())
    if result.outcome == "conflict":
        sys.exit(4)


@exchange_group.command("forward")
@click.argument("task")
@click.option("--to", "to", required=True, help="The partner that gets it next.")
@pass_context
def forward_command(obj: Context, task: str, to: str) -> None:
    """As a coordination platform: our ServiceRequest and Task for an incoming referral, sent on."""
    from ..exchange.forward import forward

    with _exchange(obj) as exchange:
        emit_json(forward(exchange, _task_id(task), to))


@exchange_group.command("incoming")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table")
@pass_context
def incoming_command(obj: Context, fmt: str) -> None:
    """The performer's side: open referrals other organizations sent here, with names read from them."""
    from ..exchange.incoming import COLUMNS, incoming
    from .output import render_rows

    with _exchange(obj) as exchange:
        render_rows(incoming(exchange), COLUMNS, fmt)


@exchange_group.command("work")
@click.argument("task")
@click.option("--to", "to", required=True, help="accepted, rejected, in-progress, on-hold, failed, completed")
@click.option("--reason", help="statusReason text (rejected: 'at capacity').")
@click.option("--outcome", help="What was done (completed: a Procedure is written).")
@pass_context
def work_command(obj: Context, task: str, to: str, reason: str | None, outcome: str | None) -> None:
    """The performer's side: move an incoming referral on this server (owner-owned fields only)."""
    from ..exchange import work

    with obj.client() as client:
        emit_json(work(client, _task_id(task), to, reason, outcome))


@exchange_group.command("subscribe")
@click.argument("partner")
@click.option(
    "--endpoint", required=True, help="Where our hook is reached (sync --listen), e.g. https://host:8800"
)
@pass_context
def subscribe_command(obj: Context, partner: str, endpoint: str) -> None:
    """Ask the partner to notify our hook when our Tasks change there (a hint: polling stays the truth)."""
    from ..exchange.notify import subscribe

    with _exchange(obj) as exchange:
        emit_json(subscribe(exchange, partner, endpoint))


@click.command("sync")
@click.option("--once", is_flag=True, help="One cycle, then print what it did as JSON.")
@click.option("--partner", help="Only this partner.")
@click.option("--listen", help="HOST:PORT for the partners' notifications, /metrics and /readyz.")
@click.option(
    "--unready-after",
    default="1h",
    show_default=True,
    help="/readyz fails after a partner is down this long.",
)
@pass_context
def sync_command(
    obj: Context, once: bool, partner: str | None, listen: str | None, unready_after: str
) -> None:
    """Keep referrals in step with partners: send, poll the partner's changes, replay them here."""
    import threading

    from ..exchange import sync_once
    from ..exchange.listen import Worker, make_server
    from ..exchange.partners import parse_duration

    with _exchange(obj) as exchange:
        if once:
            emit_json(sync_once(exchange, partner))
            return
        names = [partner] if partner else sorted(exchange.partners.partners)
        worker = Worker(exchange, names, parse_duration(unready_after))
        for name in names:
            every = int(exchange.partners.get(name).poll.total_seconds())
            click.echo(
                f"{name}: polling every {every}s" + (", woken by notifications" if listen else ""), err=True
            )
        if listen:
            host, _, port = listen.rpartition(":")
            server = make_server(worker, host or "127.0.0.1", int(port))
            threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            worker.run()
        except KeyboardInterrupt:
            worker.stop.set()


COMMANDS = (exchange_group, sync_command)
