"""A self-contained HTML report of a fleet retrain: metric before/after and the batch timeline."""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from worker.schemas import Run, RunState

PHASE_COLOURS = {
    RunState.QUEUED.value: "#c7c7c7",
    RunState.WAITING_SLOT.value: "#e6c35c",
    RunState.SUBMITTING.value: "#9ecae1",
    RunState.TRAINING.value: "#3182bd",
    RunState.EVALUATING.value: "#8c6bb1",
    RunState.DEPLOYING.value: "#31a354",
}
OUTCOME_COLOURS = {
    "succeeded": "#31a354",
    "rejected": "#e6550d",
    "failed": "#de2d26",
    "cancelled": "#969696",
}


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


def _bars(outcomes: Sequence[TenantOutcome]) -> str:
    values = [v for o in outcomes for v in (o.before, o.after) if v is not None]
    low, high = min([0.0, *values]), max([1.0, *values])
    row, width, left = 18, 640, 120
    height = row * len(outcomes) + 30

    def x(value: float) -> float:
        return left + (value - low) / (high - low) * (width - left - 10)

    parts = [
        f'<svg width="{width}" height="{height}" role="img" aria-label="metric before and after">'
    ]
    for i, o in enumerate(outcomes):
        y = 20 + i * row
        parts.append(f'<text x="0" y="{y + 10}" font-size="11">{html.escape(o.tenant_id)}</text>')
        if o.before is not None:
            parts.append(
                f'<rect x="{x(low)}" y="{y}" width="{x(o.before) - x(low):.1f}" '
                f'height="6" fill="#bdbdbd"><title>before {o.before:.3f}</title></rect>'
            )
        if o.after is not None:
            colour = OUTCOME_COLOURS.get(o.outcome, "#3182bd")
            parts.append(
                f'<rect x="{x(low)}" y="{y + 7}" width="{x(o.after) - x(low):.1f}" '
                f'height="6" fill="{colour}"><title>after {o.after:.3f} '
                f"({o.outcome})</title></rect>"
            )
    parts.append(f'<text x="{left}" y="12" font-size="11">{low:.2f}</text>')
    parts.append(f'<text x="{width - 40}" y="12" font-size="11">{high:.2f}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _timeline(runs: Sequence[Run]) -> str:
    if not runs:
        return "<p>No runs.</p>"
    start = min(r.created_at for r in runs)
    end = max(r.updated_at for r in runs)
    span = max((end - start).total_seconds(), 0.001)
    row, width, left = 8, 640, 10
    height = row * len(runs) + 20

    def x(moment: datetime) -> float:
        return left + (moment - start).total_seconds() / span * (width - left - 10)

    parts = [f'<svg width="{width}" height="{height}" role="img" aria-label="batch timeline">']
    for i, run in enumerate(sorted(runs, key=lambda r: r.created_at)):
        y = i * row
        phases = sorted(run.phases.items(), key=lambda item: item[1])
        for (phase, entered), (_, left_at) in zip(
            phases, [*phases[1:], ("end", run.updated_at)], strict=True
        ):
            colour = PHASE_COLOURS.get(phase)
            if colour is None:
                continue
            bar = max(x(left_at) - x(entered), 0.5)
            parts.append(
                f'<rect x="{x(entered):.1f}" y="{y}" width="{bar:.1f}"'
                f' height="{row - 2}" fill="{colour}"><title>{html.escape(run.tenant_id)}'
                f" {phase}</title></rect>"
            )
    parts.append(f'<text x="{left}" y="{height - 4}" font-size="11">0 s</text>')
    parts.append(f'<text x="{width - 60}" y="{height - 4}" font-size="11">{span:.1f} s</text>')
    parts.append("</svg>")
    legend = " ".join(
        f'<span style="color:{c}">&#9632;</span> {html.escape(p)}' for p, c in PHASE_COLOURS.items()
    )
    return "".join(parts) + f"<p>{legend}</p>"


def render_report(
    title: str, outcomes: Sequence[TenantOutcome], batch_runs: Sequence[Run], summary: str
) -> str:
    """The report page: a summary, the before/after chart, the timeline and the table."""
    rows = "".join(
        "<tr>"
        f"<td>{html.escape(o.tenant_id)}</td><td>{html.escape(o.target)}</td>"
        f"<td>{'' if o.before is None else f'{o.before:.3f}'}</td>"
        f"<td>{'' if o.after is None else f'{o.after:.3f}'}</td>"
        f'<td style="color:{OUTCOME_COLOURS.get(o.outcome, "#000")}">{html.escape(o.outcome)}</td>'
        f"<td>{html.escape(o.deployed_to)}</td><td>{html.escape(o.reason)}</td>"
        "</tr>"
        for o in outcomes
    )
    metric = html.escape(outcomes[0].metric) if outcomes else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2rem;max-width:60rem}}
table{{border-collapse:collapse;font-size:13px}}td,th{{border-bottom:1px solid #ddd;padding:2px 8px;
text-align:left}}</style></head><body>
<h1>{html.escape(title)}</h1><p>{html.escape(summary)}</p>
<h2>{metric}: before (grey) and after, by tenant</h2>{_bars(outcomes)}
<h2>Batch timeline (one row per run, coloured by phase)</h2>{_timeline(batch_runs)}
<h2>Results</h2><table><tr><th>tenant</th><th>target</th><th>before</th><th>after</th>
<th>decision</th><th>endpoint / service</th><th>reason</th></tr>{rows}</table>
</body></html>
"""
