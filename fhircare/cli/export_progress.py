"""Progress of a Bulk Data export on stderr: the job's state while the server works, then a bar."""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Any

import click

from ..fhir.bulk import ExportEvent


class ExportProgress:
    """A listener for :mod:`fhircare.fhir.bulk` events; use it as a context manager so the bar closes."""

    def __init__(self, label: str = "Reading the export") -> None:
        self.label = label
        self.read = 0
        self._bar: Any = None
        self._total: int | None = None

    def __call__(self, event: ExportEvent) -> None:
        if event.kind == "kicked-off":
            click.echo("Bulk export started ($export); waiting for the server's files", err=True)
        elif event.kind == "waiting":
            click.echo(f"  export {event.progress or 'in progress'} ({event.waited:.0f} s)", err=True)
        elif event.kind == "ready":
            counts = [f.count for f in event.files]
            self._total = sum(c for c in counts if c is not None) if None not in counts else None
            click.echo(f"  export ready: {len(event.files)} files", err=True)
            if self._total:
                self._bar = click.progressbar(length=self._total, label=self.label, file=sys.stderr)
                self._bar.__enter__()
        elif event.kind == "resource":
            self.read += 1
            if self._bar is not None:
                self._bar.update(1)
            elif self.read % 5000 == 0:
                click.echo(f"  {self.read} resources read", err=True)

    def __enter__(self) -> ExportProgress:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._bar is not None:
            self._bar.__exit__(exc_type, exc, tb)
            self._bar = None
