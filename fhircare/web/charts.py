"""Server-rendered SVG for the caseload page: per-coordinator open/overdue bars, the 30-day trend of
tasks opened and closed, referral closure times. Plain SVG with <title>s and a text alternative; no
chart library, no script."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from markupsafe import Markup, escape

LABEL_WIDTH = 220
BAR_WIDTH = 420
VALUE_WIDTH = 150


def _svg(width: int, height: int, title_id: str, title: str, body: list[str]) -> Markup:
    head = (
        f'<svg class="chart" role="img" aria-labelledby="{title_id}" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" preserveAspectRatio="xMinYMin meet">'
        f'<title id="{title_id}">{escape(title)}</title>'
    )
    return Markup(head + "".join(body) + "</svg>")  # noqa: S704 - every value in it is escaped above


def caseload_bars(rows: Sequence[Any]) -> Markup:
    biggest = max([r.open_tasks for r in rows] + [1])
    width = LABEL_WIDTH + BAR_WIDTH + VALUE_WIDTH
    body = []
    for i, r in enumerate(rows):
        y = 10 + i * 34
        name = str(r.name or r.coordinator)
        short = name if len(name) <= 30 else name[:29] + "…"
        open_w = round(r.open_tasks / biggest * BAR_WIDTH, 1)
        late_w = round(r.overdue_tasks / biggest * BAR_WIDTH, 1)
        body += [
            f'<text x="{LABEL_WIDTH - 8}" y="{y + 15}" text-anchor="end" class="label">{escape(short)}</text>',
            f'<rect x="{LABEL_WIDTH}" y="{y}" height="22" width="{open_w}" class="open">'
            f"<title>{r.open_tasks} open</title></rect>",
            f'<rect x="{LABEL_WIDTH}" y="{y}" height="22" width="{late_w}" class="late">'
            f"<title>{r.overdue_tasks} overdue</title></rect>",
            f'<text x="{LABEL_WIDTH + BAR_WIDTH + 8}" y="{y + 15}" class="value">'
            f"{r.open_tasks} open · {r.overdue_tasks} overdue</text>",
        ]
    return _svg(width, 20 + len(rows) * 34, "bars-title", "Open and overdue tasks per coordinator", body)


def trend_lines(days: Sequence[Any]) -> Markup:
    width, height, left, bottom = 790, 220, 40, 30
    plot_w, plot_h = width - left - 20, height - bottom - 20
    top = max([max(d.opened, d.closed) for d in days] + [1])
    step = plot_w / max(len(days) - 1, 1)

    def points(attr: str) -> str:
        return " ".join(
            f"{left + i * step:.1f},{20 + plot_h - getattr(d, attr) / top * plot_h:.1f}"
            for i, d in enumerate(days)
        )

    body = [
        f'<line x1="{left}" y1="{20 + plot_h}" x2="{left + plot_w}" y2="{20 + plot_h}" class="axis"/>',
        f'<text x="{left - 6}" y="{24}" text-anchor="end" class="value">{top}</text>',
        f'<text x="{left - 6}" y="{20 + plot_h}" text-anchor="end" class="value">0</text>',
        f'<polyline points="{points("opened")}" class="opened"><title>opened per day</title></polyline>',
        f'<polyline points="{points("closed")}" class="closed"><title>closed per day</title></polyline>',
    ]
    if days:
        body += [
            f'<text x="{left}" y="{height - 8}" class="value">{escape(days[0].day)}</text>',
            f'<text x="{left + plot_w}" y="{height - 8}" text-anchor="end" class="value">{escape(days[-1].day)}</text>',
        ]
    body += [
        f'<rect x="{left + 10}" y="4" width="12" height="4" class="opened-key"/>'
        f'<text x="{left + 26}" y="10" class="value">opened</text>',
        f'<rect x="{left + 90}" y="4" width="12" height="4" class="closed-key"/>'
        f'<text x="{left + 106}" y="10" class="value">closed</text>',
    ]
    return _svg(width, height, "trend-title", "Tasks opened and closed per day, last 30 days", body)


def closure_bars(rows: Sequence[Any]) -> Markup:
    timed = [r for r in rows if r.median_days_to_close is not None]
    longest = max([float(r.median_days_to_close) for r in timed] + [1.0])
    width = LABEL_WIDTH + BAR_WIDTH + VALUE_WIDTH
    body = []
    for i, r in enumerate(timed):
        y = 10 + i * 30
        name = str(r.name or r.coordinator)
        w = round(float(r.median_days_to_close) / longest * BAR_WIDTH, 1)
        body += [
            f'<text x="{LABEL_WIDTH - 8}" y="{y + 14}" text-anchor="end" class="label">{escape(name[:30])}</text>',
            f'<rect x="{LABEL_WIDTH}" y="{y}" height="20" width="{w}" class="closure">'
            f"<title>median {r.median_days_to_close} days</title></rect>",
            f'<text x="{LABEL_WIDTH + w + 8}" y="{y + 14}" class="value">{r.median_days_to_close} days '
            f"({r.referrals_closed} closed)</text>",
        ]
    if not timed:
        body.append('<text x="0" y="24" class="value">No referral was closed in the last 30 days.</text>')
    return _svg(width, 20 + max(len(timed), 1) * 30, "closure-title", "Median days to close a referral", body)
