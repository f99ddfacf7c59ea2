"""Metrics computed by retrainq itself, from labels and scored columns, as Evaluate Model does.

The champion/challenger gate scores both models on the same holdout rows and compares the
figures these functions compute. Names are Evaluate Model's column names, so a gate's
``metric`` means the same in ``reported`` and ``holdout`` mode. Pure functions over floats.

Regression: Mean Absolute Error, Root Mean Squared Error, Relative Absolute Error, Relative
Squared Error, Coefficient of Determination. Binary classification (labels 0/1, scored
probabilities of class 1, threshold 0.5): Accuracy, Precision, Recall, F1 Score, AUC,
Average Log Loss.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

Metric = Callable[[Sequence[float], Sequence[float]], float]

LOG_LOSS_EPSILON = 1e-15


class MeasureError(ValueError):
    """Labels and scores that cannot be measured (empty, mismatched, one class only)."""


def _pairs(labels: Sequence[float], scores: Sequence[float]) -> int:
    if len(labels) != len(scores):
        raise MeasureError(f"{len(labels)} labels but {len(scores)} scores")
    if not labels:
        raise MeasureError("no rows to measure")
    return len(labels)


def _mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values)


# --- regression ----------------------------------------------------------------------------


def mean_absolute_error(labels: Sequence[float], scores: Sequence[float]) -> float:
    """Mean of |label - score|."""
    _pairs(labels, scores)
    return _mean([abs(y - s) for y, s in zip(labels, scores, strict=True)])


def root_mean_squared_error(labels: Sequence[float], scores: Sequence[float]) -> float:
    """Square root of the mean squared error."""
    _pairs(labels, scores)
    return math.sqrt(_mean([(y - s) ** 2 for y, s in zip(labels, scores, strict=True)]))


def relative_absolute_error(labels: Sequence[float], scores: Sequence[float]) -> float:
    """Total absolute error over the total absolute deviation from the labels' mean."""
    _pairs(labels, scores)
    mean = _mean(labels)
    spread = math.fsum(abs(y - mean) for y in labels)
    if spread == 0:
        raise MeasureError("every label is the same: relative errors are undefined")
    return math.fsum(abs(y - s) for y, s in zip(labels, scores, strict=True)) / spread


def relative_squared_error(labels: Sequence[float], scores: Sequence[float]) -> float:
    """Total squared error over the total squared deviation from the labels' mean."""
    _pairs(labels, scores)
    mean = _mean(labels)
    spread = math.fsum((y - mean) ** 2 for y in labels)
    if spread == 0:
        raise MeasureError("every label is the same: relative errors are undefined")
    return math.fsum((y - s) ** 2 for y, s in zip(labels, scores, strict=True)) / spread


def coefficient_of_determination(labels: Sequence[float], scores: Sequence[float]) -> float:
    """R²: one minus the relative squared error."""
    return 1.0 - relative_squared_error(labels, scores)


# --- binary classification ------------------------------------------------------------------


@dataclass(frozen=True)
class Confusion:
    """Counts of a binary classifier's answers at a threshold."""

    tp: int
    fp: int
    tn: int
    fn: int


def confusion(
    labels: Sequence[float], scores: Sequence[float], threshold: float = 0.5
) -> Confusion:
    """The confusion counts, a score at or above ``threshold`` meaning class 1."""
    _pairs(labels, scores)
    tp = fp = tn = fn = 0
    for label, score in zip(labels, scores, strict=True):
        positive = score >= threshold
        if label == 1:
            tp, fn = (tp + 1, fn) if positive else (tp, fn + 1)
        else:
            fp, tn = (fp + 1, tn) if positive else (fp, tn + 1)
    return Confusion(tp, fp, tn, fn)


def accuracy(labels: Sequence[float], scores: Sequence[float]) -> float:
    """Share of rows classified right."""
    c = confusion(labels, scores)
    return (c.tp + c.tn) / (c.tp + c.fp + c.tn + c.fn)


def precision(labels: Sequence[float], scores: Sequence[float]) -> float:
    """Share of predicted positives that are positive (0 when nothing is predicted so)."""
    c = confusion(labels, scores)
    return c.tp / (c.tp + c.fp) if c.tp + c.fp else 0.0


def recall(labels: Sequence[float], scores: Sequence[float]) -> float:
    """Share of positives predicted positive (0 when there are none)."""
    c = confusion(labels, scores)
    return c.tp / (c.tp + c.fn) if c.tp + c.fn else 0.0


def f1_score(labels: Sequence[float], scores: Sequence[float]) -> float:
    """Harmonic mean of precision and recall (0 when both are 0)."""
    p, r = precision(labels, scores), recall(labels, scores)
    return 2 * p * r / (p + r) if p + r else 0.0


def auc(labels: Sequence[float], scores: Sequence[float]) -> float:
    """Area under the ROC curve: the chance a positive outranks a negative (ties count half)."""
    _pairs(labels, scores)
    ranked = sorted(zip(scores, labels, strict=True))
    positives = sum(1 for label in labels if label == 1)
    negatives = len(labels) - positives
    if positives == 0 or negatives == 0:
        raise MeasureError("AUC needs both classes among the labels")
    rank_sum = 0.0
    index = 0
    while index < len(ranked):
        end = index
        while end + 1 < len(ranked) and ranked[end + 1][0] == ranked[index][0]:
            end += 1
        average_rank = (index + end) / 2 + 1  # ranks are 1-based; ties share their mean rank
        rank_sum += average_rank * sum(1 for _, label in ranked[index : end + 1] if label == 1)
        index = end + 1
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def average_log_loss(labels: Sequence[float], scores: Sequence[float]) -> float:
    """Mean negative log likelihood of the labels under the scored probabilities."""
    _pairs(labels, scores)
    total = 0.0
    for label, score in zip(labels, scores, strict=True):
        p = min(1 - LOG_LOSS_EPSILON, max(LOG_LOSS_EPSILON, score))
        total -= math.log(p) if label == 1 else math.log(1 - p)
    return total / len(labels)


def metric_key(name: str) -> str:
    """A metric's name as compared everywhere: spacing collapsed, case folded."""
    return " ".join(name.split()).casefold()


# Evaluate Model's column names, by kind, as it writes them.
REGRESSION_METRICS = (
    "Mean Absolute Error",
    "Root Mean Squared Error",
    "Relative Absolute Error",
    "Relative Squared Error",
    "Coefficient of Determination",
)
BINARY_METRICS = ("Accuracy", "Precision", "Recall", "F1 Score", "AUC", "Average Log Loss")
_COMPUTE: tuple[Metric, ...] = (
    mean_absolute_error,
    root_mean_squared_error,
    relative_absolute_error,
    relative_squared_error,
    coefficient_of_determination,
    accuracy,
    precision,
    recall,
    f1_score,
    auc,
    average_log_loss,
)
# Each column name (by ``metric_key``) -> how to compute it.
METRICS: dict[str, Metric] = {
    metric_key(name): compute
    for name, compute in zip((*REGRESSION_METRICS, *BINARY_METRICS), _COMPUTE, strict=True)
}


def measure(name: str, labels: Sequence[float], scores: Sequence[float]) -> float:
    """The metric ``name`` (an Evaluate Model column name, any case) of the scored rows."""
    metric = METRICS.get(metric_key(name))
    if metric is None:
        raise MeasureError(f"unknown metric {name!r}; known: {', '.join(sorted(METRICS))}")
    return metric(labels, scores)


# --- comparing two models on the same rows ---------------------------------------------------


@dataclass(frozen=True)
class Interval:
    """A paired bootstrap's interval of ``challenger - champion`` and the point estimate."""

    difference: float
    low: float
    high: float
    resamples: int


def paired_bootstrap(
    metric: Metric,
    labels: Sequence[float],
    champion: Sequence[float],
    challenger: Sequence[float],
    *,
    confidence: float = 0.9,
    resamples: int = 1000,
    seed: int = 0,
) -> Interval:
    """The ``confidence`` interval of ``metric(challenger) - metric(champion)`` over rows
    resampled with replacement, the same rows for both models each time (seeded, so the
    same inputs always give the same interval). Resamples a metric cannot measure (one
    class only, say) are skipped."""
    n = _pairs(labels, champion)
    _pairs(labels, challenger)
    if not 0 < confidence < 1:
        raise MeasureError("confidence must lie strictly between 0 and 1")
    rng = random.Random(seed)
    differences: list[float] = []
    for _ in range(resamples):
        rows = [rng.randrange(n) for _ in range(n)]
        ys = [labels[i] for i in rows]
        try:
            differences.append(
                metric(ys, [challenger[i] for i in rows]) - metric(ys, [champion[i] for i in rows])
            )
        except MeasureError:
            continue
    if not differences:
        raise MeasureError("no resample could be measured")
    differences.sort()
    tail = (1 - confidence) / 2
    low = differences[int(tail * (len(differences) - 1))]
    high = differences[math.ceil((1 - tail) * (len(differences) - 1))]
    point = metric(labels, challenger) - metric(labels, champion)
    return Interval(point, low, high, len(differences))
