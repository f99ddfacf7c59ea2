"""A self-contained HTML report of a fleet retrain: metric before/after and the batch timeline.

It looks like the dashboard (its palette, cards and badges) and reads on its own: every colour
has a legend, the metric axis spans the values shown (so 0.85 and 0.93 sit far apart, not on
a 0-1 bar), and the timeline has a time axis and a tenant on each row.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from worker.schemas import Run, RunState

# The dashboard's colours (producer/api/ui/charts.js).
STATE_COLOURS = {
    RunState.QUEUED.value: "#9aa5b1",
    RunState.WAITING_SLOT.value: "#f0b429",
    RunState.SUBMITTING.value: "#7cc4fa",
    RunState.TRAINING.value: "#2680c2",
    RunState.EVALUATING.value: "#8b5cf6",
    "staging": "#b197fc",
    "scoring": "#0b7285",
    RunState.DEPLOYING.value: "#6d28d9",
    RunState.SUCCEEDED.value: "#27ab83",
    RunState.REJECTED.value: "#e8710a",
    RunState.FAILED.value: "#d64545",
    RunState.CANCELLED.value: "#616e7c",
}
PHASES = [s.value for s in RunState if not s.terminal]
OUTCOMES = [s.value for s in RunState if s.terminal]
OTHER = "#bcccdc"  # a state newer than this palette
BEFORE = "#9aa5b1"
LABEL_W, CHART_W, ROW_H = 130, 760, 22


@dataclass(frozen=True)
class TenantOutcome:
    """One tenant's line of the report."""

    tenant_id: str
    target: str
    deployed_to: str
    metric: str
    before: float | None
    after: float | None
    outcome: str
    reason: str


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high]: a step of 1, 2 or 5 times a power of ten."""
    if high <= low:
        high = low + 1.0
    raw = (high - low) / max(1, count)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.floor(low / step) * step
    ticks = []
    value = first
    while value <= high + step * 1e-9:
        ticks.append(round(value, 10))
        value += step
    if ticks[-1] < high:
        ticks.append(round(value, 10))
    return ticks


def metric_scale(values: Sequence[float]) -> list[float]:
    """The ticks of the metric axis: the span of ``values`` with a margin, never 0-1 by
    default, so small differences between tenants and runs are visible."""
    if not values:
        return [0.0, 1.0]
    low, high = min(values), max(values)
    margin = max((high - low) * 0.15, 0.01)
    return nice_ticks(low - margin, high + margin)


def _esc(value: object) -> str:
    return html.escape(str(value))


def _swatch(colour: str, label: str, shape: str = "square") -> str:
    """A legend entry: a square (phase), a dot (a value after) or a ring (a value before)."""
    style = {
        "square": f"background:{colour};border-radius:3px",
        "dot": f"background:{colour};border-radius:50%",
        "ring": f"border:2.5px solid {colour};border-radius:50%;background:#fff",
    }[shape]
    return f'<span class="key"><i style="{style}"></i>{_esc(label)}</span>'


def _metric_chart(outcomes: Sequence[TenantOutcome]) -> str:
    values = [v for o in outcomes for v in (o.before, o.after) if v is not None]
    ticks = metric_scale(values)
    low, high = ticks[0], ticks[-1]
    height = ROW_H * len(outcomes) + 40

    def x(value: float) -> float:
        return LABEL_W + (value - low) / (high - low) * (CHART_W - LABEL_W - 70)

    parts = [
        f'<svg viewBox="0 0 {CHART_W} {height}" class="chart" role="img" '
        'aria-label="metric before and after, by tenant">'
    ]
    for tick in ticks:
        parts.append(
            f'<line x1="{x(tick):.1f}" x2="{x(tick):.1f}" y1="14" y2="{height - 20}" '
            f'class="grid"/><text x="{x(tick):.1f}" y="{height - 6}" class="tick middle">'
            f"{tick:g}</text>"
        )
    for i, o in enumerate(outcomes):
        y = 24 + i * ROW_H
        colour = STATE_COLOURS.get(o.outcome, "#2680c2")
        parts.append(f'<text x="0" y="{y + 4}" class="label">{_esc(o.tenant_id)}</text>')
        if o.before is not None and o.after is not None:
            parts.append(
                f'<line x1="{x(o.before):.1f}" x2="{x(o.after):.1f}" y1="{y}" y2="{y}" '
                f'stroke="{colour}" stroke-width="2" opacity="0.6"/>'
            )
        if o.before is not None:
            parts.append(
                f'<circle cx="{x(o.before):.1f}" cy="{y}" r="5" fill="#fff" stroke="{BEFORE}" '
                f'stroke-width="2.5" data-kind="before"><title>before {o.before:.3f}</title>'
                "</circle>"
            )
        if o.after is not None:
            parts.append(
                f'<circle cx="{x(o.after):.1f}" cy="{y}" r="6" fill="{colour}" '
                f'data-kind="after"><title>after {o.after:.3f} ({_esc(o.outcome)})</title>'
                "</circle>"
            )
        if o.before is not None and o.after is not None:
            delta = o.after - o.before
            sign = "up" if delta >= 0 else "down"
            parts.append(
                f'<text x="{CHART_W - 60}" y="{y + 4}" class="delta {sign}">{delta:+.3f}</text>'
            )
    parts.append("</svg>")
    legend = "".join(
        [
            _swatch(BEFORE, "before (the model serving before the retrain)", "ring"),
            *(_swatch(STATE_COLOURS[k], f"after: {k}", "dot") for k in ("succeeded", "rejected")),
            _swatch(STATE_COLOURS["failed"], "after: failed (no new value)", "dot"),
        ]
    )
    return "".join(parts) + f'<div class="legend">{legend}</div>'


def _phase_spans(run: Run) -> list[tuple[str, datetime, datetime]]:
    """(phase, entered, left) of each phase the run went through, in order."""
    phases = sorted(run.phases.items(), key=lambda item: item[1])
    ends = [at for _, at in phases[1:]] + [run.updated_at]
    return [(phase, at, end) for (phase, at), end in zip(phases, ends, strict=True)]


def _timeline(runs: Sequence[Run]) -> str:
    if not runs:
        return "<p>No runs.</p>"
    ordered = sorted(runs, key=lambda r: r.created_at)
    start = ordered[0].created_at
    span = max(max((r.updated_at - start).total_seconds() for r in runs), 0.001)
    ticks = nice_ticks(0.0, span, 6)
    row = 16 if len(runs) <= 60 else 6
    height = row * len(runs) + 34
    left = LABEL_W if row >= 12 else 10

    def x(seconds: float) -> float:
        return left + seconds / ticks[-1] * (CHART_W - left - 14)

    def at(moment: datetime) -> float:
        return x((moment - start).total_seconds())

    parts = [
        f'<svg viewBox="0 0 {CHART_W} {height}" class="chart" role="img" '
        'aria-label="batch timeline: one row per run">'
    ]
    for tick in ticks:
        label = f"{tick:g} s" if ticks[-1] < 120 else f"{tick / 60:g} min"
        parts.append(
            f'<line x1="{x(tick):.1f}" x2="{x(tick):.1f}" y1="16" y2="{height - 4}" '
            f'class="grid"/><text x="{x(tick):.1f}" y="11" class="tick middle">{label}</text>'
        )
    for i, run in enumerate(ordered):
        y = 20 + i * row
        if row >= 12:
            parts.append(
                f'<text x="0" y="{y + row - 5}" class="label">{_esc(run.tenant_id)}</text>'
            )
        for phase, entered, left_at in _phase_spans(run):
            if phase in OUTCOMES:
                continue
            colour = STATE_COLOURS.get(phase, OTHER)
            width = max(at(left_at) - at(entered), 0.8)
            parts.append(
                f'<rect x="{at(entered):.1f}" y="{y}" width="{width:.1f}" height="{row - 3}" '
                f'fill="{colour}"><title>{_esc(run.tenant_id)}: {phase} '
                f"{(left_at - entered).total_seconds():.1f} s</title></rect>"
            )
        if run.state.terminal:
            colour = STATE_COLOURS.get(run.state.value, OTHER)
            parts.append(
                f'<rect x="{at(run.updated_at) - 1:.1f}" y="{y - 1}" width="4" height="{row - 1}" '
                f'fill="{colour}"><title>{_esc(run.tenant_id)}: {run.state.value}</title></rect>'
            )
    parts.append("</svg>")
    keys = [_swatch(STATE_COLOURS.get(p, OTHER), p.replace("_", " ")) for p in PHASES]
    keys += [_swatch(STATE_COLOURS.get(o, OTHER), f"end: {o}") for o in OUTCOMES]
    return "".join(parts) + f'<div class="legend">{"".join(keys)}</div>'


CSS = """
:root{--bg:#f5f7fa;--card:#fff;--ink:#1f2933;--muted:#616e7c;--line:#e4e7eb}
body{margin:0;background:var(--bg);color:var(--ink);font:14px system-ui,-apple-system,"Segoe UI",
Roboto,"DejaVu Sans",sans-serif}
header{background:#102a43;color:#fff;padding:.7rem 1.5rem;font-weight:700;font-size:1.1rem}
main{max-width:1000px;margin:0 auto;padding:1.25rem 1.5rem 3rem}
h1{font-size:1.5rem;margin:.2rem 0 .6rem}
h2{font-size:1rem;margin:0 0 .75rem;color:var(--muted);text-transform:uppercase;
letter-spacing:.04em}
.card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:1rem 1.1rem;
margin-bottom:1rem;overflow-x:auto}
.muted{color:var(--muted)}.small{font-size:.85em}
.chart{width:100%;height:auto;display:block;margin:.4rem 0}
.chart .grid{stroke:var(--line)}.chart .tick{font-size:11px;fill:var(--muted)}
.chart .middle{text-anchor:middle}.chart .label{font-size:12px;fill:var(--ink)}
.chart .delta{font-size:12px;font-variant-numeric:tabular-nums}
.chart .up{fill:#27ab83}.chart .down{fill:#d64545}
.legend{display:flex;flex-wrap:wrap;gap:.5rem 1rem;font-size:.85em;color:var(--muted);
margin-top:.4rem}
.key{display:inline-flex;align-items:center;gap:.35rem}
.key i{display:inline-block;width:12px;height:12px;box-sizing:border-box}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:.4rem .5rem;border-bottom:1px solid var(--line);vertical-align:top}
th{color:var(--muted);font-weight:600;font-size:.85em}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.badge{display:inline-block;padding:.05rem .45rem;border-radius:999px;font-size:.8em;color:#fff;
white-space:nowrap}
"""


def _badge(outcome: str) -> str:
    colour = STATE_COLOURS.get(outcome, "#9aa5b1")
    return f'<span class="badge" style="background:{colour}">{_esc(outcome)}</span>'


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"


def render_report(
    title: str, outcomes: Sequence[TenantOutcome], batch_runs: Sequence[Run], summary: str
) -> str:
    """The report page: a summary, the before/after chart, the timeline and the table."""
    rows = "".join(
        "<tr>"
        f"<td>{_esc(o.tenant_id)}</td><td>{_esc(o.target)}</td>"
        f'<td class="num">{_number(o.before)}</td><td class="num">{_number(o.after)}</td>'
        '<td class="num">'
        f"{'' if o.before is None or o.after is None else f'{o.after - o.before:+.3f}'}</td>"
        f"<td>{_badge(o.outcome)}</td>"
        f"<td>{_esc(o.deployed_to)}</td><td>{_esc(o.reason)}</td>"
        "</tr>"
        for o in outcomes
    )
    metric = _esc(outcomes[0].metric) if outcomes else "metric"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{_esc(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>{CSS}</style></head><body>
<header>retrainq</header><main>
<h1>{_esc(title)}</h1><p class="muted">{_esc(summary)}</p>
<section class="card"><h2>{metric}: before and after, by tenant</h2>
<p class="muted small">Each row is a tenant: the hollow dot is the model serving before the
bulk retrain, the filled dot the model it trained, coloured by the gate's decision; the number
at the right is the change. The axis spans the values shown.</p>{_metric_chart(outcomes)}</section>
<section class="card"><h2>Batch timeline</h2>
<p class="muted small">One row per run of the bulk retrain, from its creation: waiting for a
slot, submitting, training on Azure ML, evaluating, deploying; the mark at the end is the
outcome. Times are seconds since the first run was created.</p>{_timeline(batch_runs)}</section>
<section class="card"><h2>Results</h2><table><thead><tr><th>tenant</th><th>target</th>
<th>before</th><th>after</th><th>change</th><th>decision</th><th>endpoint / service</th>
<th>reason</th></tr></thead><tbody>{rows}</tbody></table></section>
</main></body></html>
"""
