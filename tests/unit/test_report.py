"""The demo's HTML report (``producer/devtools/report.py``): an axis that shows differences, a
legend for every colour, a timeline with a time axis, one table row per tenant."""

from __future__ import annotations

import re
from datetime import timedelta
from itertools import pairwise

from producer.devtools.report import (
    OUTCOMES,
    PHASES,
    TenantOutcome,
    metric_scale,
    nice_ticks,
    render_report,
)
from worker.run.model import BesOutputs, Run, RunState
from worker.schemas import utcnow

METRIC = "Coefficient of Determination"


def outcome(
    tenant_id: str, deployed: float | None, candidate: float | None, state: str
) -> TenantOutcome:
    """A tenant's line of the report, judged on 60 held-out rows."""
    return TenantOutcome(
        tenant_id,
        "classic",
        f"ep-{tenant_id}",
        METRIC,
        deployed,
        candidate,
        state,
        "",
        evaluation="holdout" if candidate is not None else "",
        rows=60 if candidate is not None else None,
    )


def run(tenant_id: str, seconds: float, state: RunState) -> Run:
    """A run that went through every phase, ending ``seconds`` after it was created."""
    start = utcnow()
    phases = {
        "queued": start,
        "waiting_slot": start + timedelta(seconds=0.1),
        "submitting": start + timedelta(seconds=1),
        "training": start + timedelta(seconds=1.5),
        "evaluating": start + timedelta(seconds=seconds - 1),
        state.value: start + timedelta(seconds=seconds),
    }
    outputs = BesOutputs(model_path="m.ilearner", evaluation_path="e.csv")
    return Run(
        id=f"run-{tenant_id}",
        tenant_id=tenant_id,
        seq=2,
        state=state,
        outputs=outputs,
        phases=phases,
        created_at=start,
        updated_at=start + timedelta(seconds=seconds),
        deadline_at=start + timedelta(hours=1),
    )


def test_ticks_are_round_and_cover_the_span() -> None:
    """Steps of 1, 2 or 5 times a power of ten from below the low end to above the high."""
    ticks = nice_ticks(0.83, 0.95)
    assert ticks[0] <= 0.83
    assert ticks[-1] >= 0.95
    steps = {round(b - a, 6) for a, b in pairwise(ticks)}
    assert steps == {0.05}


def test_the_metric_axis_spans_the_values_not_zero_to_one() -> None:
    """0.85 and 0.93 end up far apart: the axis starts near 0.84, not at 0."""
    ticks = metric_scale([0.85, 0.93])
    assert 0.8 <= ticks[0] < 0.85
    assert 0.93 < ticks[-1] <= 0.96


def test_the_report_shows_differences_legends_and_one_row_per_tenant() -> None:
    """Two tenants' candidate dots are hundreds of units apart; every phase and outcome
    colour is in a legend; the timeline has second ticks and a label per run."""
    outcomes = [
        outcome("shop-a", 0.85, 0.93, "succeeded"),
        outcome("shop-b", 0.90, 0.85, "rejected"),
        outcome("shop-c", 0.88, None, "failed"),
    ]
    runs = [run("shop-a", 12, RunState.SUCCEEDED), run("shop-b", 9, RunState.REJECTED)]
    page = render_report("demo", outcomes, runs, "3 tenants")
    candidates = [
        float(x)
        for x in re.findall(
            r'<circle cx="([\d.]+)" cy="[\d.]+" r="6"[^>]*data-kind="candidate"', page
        )
    ]
    assert len(candidates) == 2
    assert candidates[0] - candidates[1] > 250  # 0.93 vs 0.85: on a 0-1 axis 45 apart
    legends = re.findall(r'<div class="legend">(.*?)</div>', page)
    assert len(legends) == 2
    for name in PHASES:
        assert name.replace("_", " ") in legends[1]
    for name in OUTCOMES:
        assert f"end: {name}" in legends[1]
    assert "deployed model, on the new rows" in legends[0]
    assert "candidate on the same rows: rejected" in legends[0]
    assert re.search(r">\d+ s</text>", page)
    assert page.count('class="label">shop-a<') == 2  # on both charts
    assert len(re.findall(r"<tr[ >]", page)) == 1 + len(outcomes)
    assert "+0.080" in page
    assert "-0.050" in page
    assert page.count("60 new rows, both models") == 2


def test_the_interval_is_a_whisker_and_reported_figures_a_dashed_line() -> None:
    """A holdout decision's interval is drawn between its ends on the candidate's row; a
    decision on reported figures is joined by a dashed line and says so in the table."""
    judged = TenantOutcome(
        "shop-a", "classic", "ep", METRIC, 0.50, 0.90, "succeeded", "better",
        evaluation="holdout", rows=120, low=0.85, high=0.95,
    )  # fmt: skip
    reported = TenantOutcome(
        "shop-b", "new", "rq-b", METRIC, 0.95, 0.80, "rejected", "regresses",
        evaluation="reported", note="needs a classic target",
    )  # fmt: skip
    page = render_report("demo", [judged, reported], [], "2 tenants")
    whisker = re.search(r'<path d="M([\d.]+) \d+v8M[\d.]+ \d+H([\d.]+)', page)
    assert whisker is not None
    found = re.findall(r'<circle cx="([\d.]+)"[^>]*data-kind="(\w+)"', page)
    dots = {kind: cx for cx, kind in found[:2]}  # shop-a's two dots
    low, high = float(whisker.group(1)), float(whisker.group(2))
    assert low < float(dots["candidate"]) < high
    assert float(dots["deployed"]) < low
    assert page.count('data-kind="interval"') == 1
    assert 'stroke-dasharray="4 3"' in page.split('data-tenant="shop-b"')[1]
    assert "0.850 to 0.950" in page
    assert "reported figures" in page
    assert "regresses (needs a classic target)" in page
