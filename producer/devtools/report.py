"""A self-contained HTML report of a fleet retrain: per tenant, the deployed model and the
candidate on the same held-out rows with the gate's decision, and the batch timeline.

It looks like the dashboard (its palette, cards and badges) and reads on its own: every colour
has a legend, the metric axis spans the values shown (so 0.85 and 0.93 sit far apart, not on
a 0-1 bar), and the timeline has a time axis and a tenant on each row.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence
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
    """One tenant's line of the report: the gate's decision on its bulk retrain.

    ``evaluation`` ``holdout``: ``deployed`` is the deployed model's metric on ``rows``
    held-out rows of the new data and ``candidate`` the new model's on the same rows, with
    ``low``-``high`` the candidate's value the bootstrap interval allows. ``reported``: the
    figures each model's own training reported (different rows). Empty: no decision.
    """

    tenant_id: str
    target: str
    deployed_to: str
    metric: str
    deployed: float | None
    candidate: float | None
    outcome: str
    reason: str
    evaluation: str = ""
    rows: int | None = None
    low: float | None = None
    high: float | None = None
    note: str = ""

    @property
    def change(self) -> float | None:
        """Candidate minus deployed model (in the metric's units), when both are known."""
        if self.deployed is None or self.candidate is None:
            return None
        return self.candidate - self.deployed

    @property
    def judged_on(self) -> str:
        """What the decision compared, in a few words."""
        if self.evaluation == "holdout":
            return f"{self.rows} new rows, both models"
        if self.evaluation == "reported":
            return "reported figures"
        return "-"


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
    values = [
        v for o in outcomes for v in (o.deployed, o.candidate, o.low, o.high) if v is not None
    ]
    ticks = metric_scale(values)
    low, high = ticks[0], ticks[-1]
    height = ROW_H * len(outcomes) + 40

    def x(value: float) -> float:
        return LABEL_W + (value - low) / (high - low) * (CHART_W - LABEL_W - 70)

    parts = [
        f'<svg viewBox="0 0 {CHART_W} {height}" class="chart" role="img" '
        'aria-label="deployed model and candidate on the same rows, by tenant">'
    ]
    for tick in ticks:
        parts.append(
            f'<line x1="{x(tick):.1f}" x2="{x(tick):.1f}" y1="14" y2="{height - 20}" '
            f'class="grid"/><text x="{x(tick):.1f}" y="{height - 6}" class="tick middle">'
            f"{tick:g}</text>"
        )
    for i, o in enumerate(outcomes):
        parts.append(_metric_row(o, 24 + i * ROW_H, x))
    parts.append("</svg>")
    legend = "".join(
        [
            _swatch(BEFORE, "deployed model, on the new rows", "ring"),
            *(
                _swatch(STATE_COLOURS[k], f"candidate on the same rows: {label}", "dot")
                for k, label in (("succeeded", "deployed"), ("rejected", "rejected"))
            ),
            '<span class="key"><i class="whisker"></i>the deployed model plus the 90 % '
            "interval of the improvement (paired bootstrap of the rows)</span>",
            '<span class="key"><i class="dashed"></i>reported figures: each model on its '
            "own rows</span>",
            _swatch(STATE_COLOURS["failed"], "failed (no decision)", "dot"),
        ]
    )
    return "".join(parts) + f'<div class="legend">{legend}</div>'


def _metric_row(o: TenantOutcome, y: int, x: Callable[[float], float]) -> str:
    """One tenant's row of the metric chart: the deployed model's ring, the candidate's dot
    and its interval, joined by a line (dashed when the figures are of different rows)."""
    colour = STATE_COLOURS.get(o.outcome, "#2680c2")
    parts = [
        f'<g data-tenant="{_esc(o.tenant_id)}" data-evaluation="{_esc(o.evaluation)}">'
        f'<text x="0" y="{y + 4}" class="label">{_esc(o.tenant_id)}</text>'
    ]
    if o.deployed is not None and o.candidate is not None:
        dash = ' stroke-dasharray="4 3"' if o.evaluation != "holdout" else ""
        parts.append(
            f'<line x1="{x(o.deployed):.1f}" x2="{x(o.candidate):.1f}" y1="{y}" y2="{y}" '
            f'stroke="{colour}" stroke-width="2" opacity="0.6"{dash}/>'
        )
    if o.low is not None and o.high is not None:
        parts.append(
            f'<path d="M{x(o.low):.1f} {y - 4}v8M{x(o.low):.1f} {y}H{x(o.high):.1f}'
            f'M{x(o.high):.1f} {y - 4}v8" stroke="#334e68" stroke-width="1.3" fill="none" '
            f'data-kind="interval"><title>90 % interval {o.low:.3f} to {o.high:.3f}</title>'
            "</path>"
        )
    if o.deployed is not None:
        parts.append(
            f'<circle cx="{x(o.deployed):.1f}" cy="{y}" r="5" fill="#fff" stroke="{BEFORE}" '
            f'stroke-width="2.5" data-kind="deployed"><title>deployed model {o.deployed:.3f}'
            "</title></circle>"
        )
    if o.candidate is not None:
        parts.append(
            f'<circle cx="{x(o.candidate):.1f}" cy="{y}" r="6" fill="{colour}" '
            f'data-kind="candidate"><title>candidate {o.candidate:.3f} ({_esc(o.outcome)})'
            "</title></circle>"
        )
    if o.change is not None:
        sign = "up" if o.change >= 0 else "down"
        parts.append(
            f'<text x="{CHART_W - 60}" y="{y + 4}" class="delta {sign}">{o.change:+.3f}</text>'
        )
    return "".join(parts) + "</g>"


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
.key i.whisker{height:8px;border:1.3px solid #334e68;border-top:0;border-bottom:0;
background:linear-gradient(#334e68,#334e68) center/100% 1.3px no-repeat}
.key i.dashed{height:0;width:18px;border-top:2px dashed #9aa5b1}
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


def _interval(o: TenantOutcome) -> str:
    return "" if o.low is None or o.high is None else f"{o.low:.3f} to {o.high:.3f}"


def _row(o: TenantOutcome) -> str:
    change = "" if o.change is None else f"{o.change:+.3f}"
    reason = f"{o.reason} ({o.note})" if o.note else o.reason
    return (
        f'<tr data-evaluation="{_esc(o.evaluation)}">'
        f"<td>{_esc(o.tenant_id)}</td><td>{_esc(o.target)}</td><td>{_esc(o.judged_on)}</td>"
        f'<td class="num">{_number(o.deployed)}</td><td class="num">{_number(o.candidate)}</td>'
        f'<td class="num">{change}</td><td class="num">{_interval(o)}</td>'
        f"<td>{_badge(o.outcome)}</td>"
        f"<td>{_esc(o.deployed_to)}</td><td>{_esc(reason)}</td>"
        "</tr>"
    )


def render_report(
    title: str, outcomes: Sequence[TenantOutcome], batch_runs: Sequence[Run], summary: str
) -> str:
    """The report page: a summary, the deployed-model/candidate chart, the timeline and the
    table."""
    rows = "".join(_row(o) for o in outcomes)
    metric = _esc(outcomes[0].metric) if outcomes else "metric"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{_esc(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>{CSS}</style></head><body>
<header>retrainq</header><main>
<h1>{_esc(title)}</h1><p class="muted">{_esc(summary)}</p>
<section class="card"><h2>{metric}: deployed model on the new rows → candidate on the same
rows</h2>
<p class="muted small">Each row is a tenant's bulk retrain. Before deciding, the gate held out
part of the tenant's new data, trained the candidate on the rest, and had both the deployed
model (hollow ring) and the candidate (filled dot, coloured by the decision) score the same
held-out rows; the whisker is where the candidate may lie: the deployed model's value plus the
90 % interval of the improvement from a paired bootstrap of those rows. The number at the
right is the candidate minus the deployed model. A candidate is deployed when it is not worse
than the deployed model by more than the gate allows. Dashed rows are judged on the figures
each model reported when it was trained (different rows): new web services have no staging
copy to score a candidate on. The axis spans the values
shown.</p>{_metric_chart(outcomes)}</section>
<section class="card"><h2>Batch timeline</h2>
<p class="muted small">One row per run of the bulk retrain, from its creation: waiting for a
slot, submitting, training on Azure ML, evaluating, staging the candidate and scoring both
models, deploying; the mark at the end is the outcome. Times are seconds since the first run
was created.</p>{_timeline(batch_runs)}</section>
<section class="card"><h2>Results</h2><table><thead><tr><th>tenant</th><th>target</th>
<th>judged on</th><th>deployed model</th><th>candidate</th><th>change</th>
<th>90 % interval</th><th>decision</th><th>endpoint / service</th><th>reason</th></tr>
</thead><tbody>{rows}</tbody></table></section>
</main></body></html>
"""
