"""Rendering for the CLI: JSON, tables, CSV, and errors with their exit codes."""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Sequence
from typing import Any

import click

from ..errors import ErrorReport, FhircareError


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    if not rows:
        return "(none)"
    cells = [[_cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    line = "  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(out)


def to_csv(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: _cell(row.get(c)) for c in columns})
    return buffer.getvalue()


def render_rows(
    rows: Sequence[dict[str, Any]], columns: Sequence[str], fmt: str, truncated: bool = False
) -> None:
    """Rows as a table, CSV or JSON. JSON is the array of rows; when paging stopped before the end
    (``truncated``, also logged as a warning on stderr) it is ``{"rows": [...], "truncated": true}``,
    so that no script takes a cut list for the whole one."""
    if fmt == "json":
        emit_json({"rows": list(rows), "truncated": True} if truncated else list(rows))
    elif fmt == "csv":
        click.echo(to_csv(rows, columns), nl=False)
    else:
        click.echo(table(rows, columns))


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return ", ".join(_cell(v) for v in value)
    return str(value)


def fail(exc: FhircareError, as_json: bool = False) -> None:
    """Print an error (one line plus its issues) to stderr and exit with the error's code."""
    report = ErrorReport.of(exc)
    if as_json:
        click.echo(json.dumps(report.__dict__, indent=2), err=True)
    else:
        click.echo(f"error: {exc.message}", err=True)
        for issue in exc.issues:
            click.echo(f"  - {issue}", err=True)
    sys.exit(exc.exit_code)
