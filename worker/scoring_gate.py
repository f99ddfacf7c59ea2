"""The gate in ``holdout`` mode: read labels and scored columns, measure both models, decide.

Pure functions. The champion (the deployed model) and the challenger (the candidate) were
scored by the remote service on the same holdout rows; this module reads the labels from
the holdout CSV retrainq wrote and the scores from the scored CSVs the service wrote back
(rows in the order they were sent), computes Evaluate Model's metrics with
``worker/measures.py`` and judges the challenger by the tenant's gate.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass

from worker.evaluate import Comparison, Decision, Gate, describe_allowance, exceeds
from worker.measures import (
    BINARY_METRICS,
    METRICS,
    REGRESSION_METRICS,
    MeasureError,
    measure,
    metric_key,
    paired_bootstrap,
)

SCORED_LABELS = "Scored Labels"
SCORED_PROBABILITIES = "Scored Probabilities"


class ScoredError(ValueError):
    """Scored or holdout rows that cannot be measured (a column missing, a row count off)."""


def is_regression(metric: str) -> bool:
    """Whether ``metric`` is one of Evaluate Model's regression metrics."""
    return metric_key(metric) in {metric_key(name) for name in REGRESSION_METRICS}


def measurable(metric: str) -> bool:
    """Whether retrainq can compute ``metric`` from labels and scores itself."""
    return metric_key(metric) in METRICS


def scored_column(metric: str) -> str:
    """The scored column a metric reads: labels for regression, probabilities otherwise."""
    return SCORED_LABELS if is_regression(metric) else SCORED_PROBABILITIES


def read_column(text: str, column: str, what: str) -> list[float]:
    """The values of ``column`` (matched ignoring case and spacing) of a CSV, as floats."""
    records = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    header = next(records, None)
    if header is None:
        raise ScoredError(f"the {what} is empty")
    names = [metric_key(name) for name in header]
    if metric_key(column) not in names:
        raise ScoredError(f"the {what} has no column {column!r} (has: {', '.join(header)})")
    index = names.index(metric_key(column))
    values: list[float] = []
    for number, record in enumerate(records, start=2):
        if not any(cell.strip() for cell in record):
            continue
        try:
            value = float(record[index])
        except (IndexError, ValueError):
            raise ScoredError(f"the {what} has no number in {column!r} on line {number}") from None
        if not math.isfinite(value):
            raise ScoredError(f"the {what} has a non-finite {column!r} on line {number}")
        values.append(value)
    return values


def measure_kind(metric: str, labels: Sequence[float], scores: Sequence[float]) -> dict[str, float]:
    """Every metric of ``metric``'s kind that the rows can measure, by Evaluate Model name."""
    names = REGRESSION_METRICS if is_regression(metric) else BINARY_METRICS
    figures: dict[str, float] = {}
    for name in names:
        try:
            figures[name] = measure(name, labels, scores)
        except MeasureError:
            continue
    return figures


@dataclass(frozen=True)
class Scored:
    """One model's scores of the holdout rows and where they were read from."""

    scores: list[float]
    scored_path: str
    model_path: str


@dataclass(frozen=True)
class HoldoutRows:
    """The holdout: its labels and the blob they were read from."""

    labels: list[float]
    path: str


# The confidence of the interval every holdout decision records when its gate asks for none.
RECORD_CONFIDENCE = 0.9


@dataclass(frozen=True)
class Improvement:
    """The paired bootstrap's interval of the challenger's improvement over the champion (in
    the metric's better direction) at ``confidence``."""

    low: float
    high: float
    confidence: float
    resamples: int


def improvement_interval(
    gate: Gate,
    labels: Sequence[float],
    champion: Sequence[float],
    challenger: Sequence[float],
    *,
    seed: int,
) -> Improvement:
    """The bootstrap interval a decision records (and, with ``gate.confidence``, decides by).

    Costs ``resamples`` times the metric over the holdout's rows: the step loop runs it in a
    thread. Raises ``MeasureError`` when no resample can be measured.
    """
    confidence = gate.confidence or RECORD_CONFIDENCE
    interval = paired_bootstrap(
        METRICS[metric_key(gate.metric)],
        labels,
        champion,
        challenger,
        confidence=confidence,
        resamples=gate.resamples,
        seed=seed,
    )
    if gate.effective_direction == "higher_is_better":
        return Improvement(interval.low, interval.high, confidence, interval.resamples)
    # The bootstrap measures challenger - champion; lower is better turns it around.
    return Improvement(-interval.high, -interval.low, confidence, interval.resamples)


def bootstrap_seed(run_id: str) -> int:
    """The bootstrap's seed of a run (so its decision can be recomputed exactly)."""
    return int.from_bytes(hashlib.blake2b(run_id.encode(), digest_size=8).digest(), "big")


def judge_holdout(
    gate: Gate,
    holdout: HoldoutRows,
    challenger: Scored,
    champion: Scored | None,
    *,
    seed: int,
    interval: Improvement | None = None,
) -> Decision:
    """Accept or reject the challenger by its metric on the holdout against the champion's.

    ``interval`` is ``improvement_interval`` of the same rows and seed when the caller
    computed it already (else it is computed here). Raises ``ScoredError`` or
    ``MeasureError`` when the rows cannot be measured.
    """
    metric, higher = gate.metric, gate.effective_direction == "higher_is_better"
    labels = holdout.labels
    rows = len(labels)
    for model in (challenger, champion):
        if model is not None and len(model.scores) != rows:
            raise ScoredError(
                f"{model.scored_path} holds {len(model.scores)} scored rows, the holdout {rows}"
            )
    value = measure(metric, labels, challenger.scores)
    baseline = measure(metric, labels, champion.scores) if champion else None
    comparison = Comparison(
        holdout_rows=rows,
        holdout_path=holdout.path,
        challenger_metrics=measure_kind(metric, labels, challenger.scores),
        champion_metrics=measure_kind(metric, labels, champion.scores) if champion else None,
        challenger_scored=challenger.scored_path,
        champion_scored=champion.scored_path if champion else None,
        challenger_model=challenger.model_path,
        champion_model=champion.model_path if champion else None,
    )
    on_rows = f"on {rows} held-out rows, {metric} of the candidate is {value:.6g}"

    def verdict(accepted: bool, reason: str, compared: Comparison) -> Decision:
        return Decision(
            accepted=accepted,
            reason=reason,
            metric=metric,
            value=value,
            baseline=baseline,
            evaluation="holdout",
            comparison=compared,
        )

    misses = gate.threshold is not None and (
        (higher and value < gate.threshold) or (not higher and value > gate.threshold)
    )
    below = f"{on_rows}, {'below' if higher else 'above'} the threshold {gate.threshold or 0:g}"
    if champion is None or baseline is None:
        if misses:
            return verdict(False, below, comparison)
        reason = f"{on_rows}; no deployed model to compare with: judged on its threshold alone"
        return verdict(True, reason, comparison)
    improvement = value - baseline if higher else baseline - value
    allowed = gate.allowed_regression(baseline)
    comparison = comparison.model_copy(
        update={"difference": improvement, "allowed_regression": allowed}
    )
    against = (
        f"{on_rows}, of the deployed model {baseline:.6g} on the same rows "
        f"({'better' if improvement >= 0 else 'worse'} by {abs(improvement):.4g})"
    )
    floor = -(allowed or 0.0)
    if interval is None:
        try:
            interval = improvement_interval(
                gate, labels, champion.scores, challenger.scores, seed=seed
            )
        except MeasureError:
            if not misses:
                raise
            return verdict(False, below, comparison)  # the threshold decides without it
    comparison = comparison.model_copy(
        update={
            "interval_low": interval.low,
            "interval_high": interval.high,
            "confidence": interval.confidence,
            "resamples": interval.resamples,
        }
    )
    if misses:  # recorded with the comparison to the deployed model, like every decision
        return verdict(False, below, comparison)
    words = (
        f"the {interval.confidence:.0%} interval of the improvement "
        f"[{interval.low:.4g}, {interval.high:.4g}]"
    )
    if allowed is not None and exceeds(-improvement, allowed):
        reason = f"{against}: regresses by more than {describe_allowance(gate, allowed)}"
        return verdict(False, reason, comparison)
    if gate.confidence is not None:
        if interval.low <= floor:
            return verdict(False, f"{against}; {words} does not lie above {floor:.4g}", comparison)
        return verdict(True, f"{against}; {words} lies above {floor:.4g}", comparison)
    return verdict(True, f"{against}: within the allowed regression ({words})", comparison)
