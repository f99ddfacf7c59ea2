"""How the CLI and the demo word a gate decision: the deployed model and the candidate on the
same held-out rows, the improvement and its interval, or the reported figures and why."""

from __future__ import annotations

from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from worker.evaluate import Decision, Gate
from worker.schemas import Run


def higher_is_better(decision: Decision) -> bool:
    """Whether the decision's metric is better when higher (known metrics by name, else from
    how the recorded improvement was taken)."""
    try:
        return Gate(metric=decision.metric).effective_direction == "higher_is_better"
    except ValidationError:
        comparison = decision.comparison
        if comparison and comparison.difference is not None and decision.value is not None:
            return decision.baseline is None or comparison.difference == (
                decision.value - decision.baseline
            )
        return True


def candidate_range(decision: Decision) -> tuple[float, float] | None:
    """The candidate's metric the improvement's interval allows, in the metric's units
    (the deployed model's value moved by the interval), or None without an interval."""
    comparison = decision.comparison
    if (
        comparison is None
        or decision.baseline is None
        or comparison.interval_low is None
        or comparison.interval_high is None
    ):
        return None
    low, high = comparison.interval_low, comparison.interval_high
    if higher_is_better(decision):
        return decision.baseline + low, decision.baseline + high
    return decision.baseline - high, decision.baseline - low


def judged_on(decision: Decision | None) -> str:
    """What the decision compared, in a few words."""
    if decision is None:
        return "-"
    if decision.evaluation == "holdout" and decision.comparison is not None:
        return f"{decision.comparison.holdout_rows} held-out rows"
    return "reported figures"


def evaluation_text(run: Run) -> str | None:
    """The run's evaluation mode and split, or why it fell back to the reported figures."""
    note = run.evaluation_note or (run.decision.note if run.decision else None)
    mode = run.evaluation or (run.decision.evaluation if run.decision else None)
    if mode is None:
        return None
    if mode == "reported":
        reported = "reported: each model's own Evaluate Model figures (different rows)"
        return f"{reported}; {note}" if note else reported
    split = run.holdout
    if split is None:
        return "holdout"
    how = (
        f"the newest {split.fraction:.0%} by {split.time_column}"
        if split.time_column
        else f"{split.fraction:.0%} of the rows, seeded by the run"
    )
    return (
        f"holdout: {split.holdout_rows} rows held out ({how}), trained on "
        f"{split.train_rows}; label {split.label}"
    )


def signed(value: float | None, digits: int = 4) -> str:
    """``+0.0412``; empty for None."""
    return "" if value is None else f"{value:+.{digits}g}"


def plain(value: float | None, digits: int = 4) -> str:
    """``0.8123``; ``-`` for None."""
    return "-" if value is None else f"{value:.{digits}g}"


def improvement_text(decision: Decision) -> str | None:
    """The improvement of the candidate over the deployed model, its interval and allowance."""
    comparison = decision.comparison
    if comparison is None or comparison.difference is None:
        return None
    parts = [f"{signed(comparison.difference)} (positive: the candidate is better)"]
    if comparison.interval_low is not None and comparison.interval_high is not None:
        confidence = comparison.confidence or 0.9
        parts.append(
            f"{confidence:.0%} interval [{signed(comparison.interval_low)}, "
            f"{signed(comparison.interval_high)}] ({comparison.resamples} resamples)"
        )
    if comparison.allowed_regression is not None:
        parts.append(f"allowed regression {plain(comparison.allowed_regression)}")
    return "; ".join(parts)


def show_comparison(console: Console, decision: Decision) -> None:
    """Both models' metrics on the same held-out rows, one row per metric, and the gate's
    improvement with its interval; nothing for a decision without a comparison."""
    comparison = decision.comparison
    if comparison is None:
        return
    champion = comparison.champion_metrics
    title = (
        f"deployed model -> candidate on the same {comparison.holdout_rows} held-out rows"
        if champion is not None
        else f"candidate on {comparison.holdout_rows} held-out rows (no deployed model)"
    )
    table = Table(title=title, title_justify="left")
    table.add_column("metric")
    if champion is not None:
        table.add_column("deployed", justify="right")
    table.add_column("candidate", justify="right")
    if champion is not None:
        table.add_column("change", justify="right")
    for name, value in comparison.challenger_metrics.items():
        label = f"{name} (gate)" if name == decision.metric else name
        if champion is None:
            table.add_row(label, plain(value))
            continue
        old = champion.get(name)
        change = signed(value - old) if old is not None else ""
        table.add_row(label, plain(old), plain(value), change)
    console.print(table)
    improvement = improvement_text(decision)
    if improvement:
        console.print(f"improvement  {improvement}", highlight=False, markup=False)
