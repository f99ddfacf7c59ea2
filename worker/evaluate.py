"""The evaluation gate: read Evaluate Model's CSV and decide whether a new model may deploy."""

from __future__ import annotations

import csv
import io
import math
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from worker.measures import metric_key

Direction = Literal["higher_is_better", "lower_is_better"]
# How the gate judges a candidate: on rows retrainq held out and scored both models on, or on
# the figures the training experiment reported for itself (the behaviour before holdouts).
EvaluationMode = Literal["holdout", "reported"]

# Azure ML Evaluate Model columns, by normalized name.
_DIRECTIONS: dict[str, Direction] = {
    "auc": "higher_is_better",
    "accuracy": "higher_is_better",
    "precision": "higher_is_better",
    "recall": "higher_is_better",
    "f1 score": "higher_is_better",
    "coefficient of determination": "higher_is_better",
    "overall accuracy": "higher_is_better",
    "average accuracy": "higher_is_better",
    "mean absolute error": "lower_is_better",
    "root mean squared error": "lower_is_better",
    "relative absolute error": "lower_is_better",
    "relative squared error": "lower_is_better",
    "average log loss": "lower_is_better",
    "negative log likelihood": "lower_is_better",
    "mean zero one error": "lower_is_better",
}

MAX_EVALUATION_BYTES = 64 * 1024


class EvaluationError(ValueError):
    """An evaluation CSV that does not hold one row of metrics."""


def parse_evaluation_csv(text: str) -> dict[str, float]:
    """Metrics from an Evaluate Model CSV: one header row and one row of values.

    Cells are trimmed and may be quoted; non-numeric and non-finite cells are left out (some
    columns are labels). Raises ``EvaluationError`` when no metric can be read.
    """
    if len(text) > MAX_EVALUATION_BYTES:
        raise EvaluationError(f"evaluation CSV larger than {MAX_EVALUATION_BYTES} bytes")
    try:
        rows = [
            [cell.strip() for cell in row]
            for row in csv.reader(io.StringIO(text.lstrip("\ufeff")), skipinitialspace=True)
            if any(cell.strip() for cell in row)
        ]
    except csv.Error as exc:
        raise EvaluationError(f"evaluation CSV is malformed: {exc}") from exc
    if len(rows) != 2:
        raise EvaluationError(f"expected a header row and one value row, found {len(rows)} rows")
    header, values = rows
    if len(header) != len(values):
        raise EvaluationError(f"header has {len(header)} columns but values have {len(values)}")
    metrics: dict[str, float] = {}
    for name, cell in zip(header, values, strict=True):
        if not name:
            raise EvaluationError("a column has no name")
        if name in metrics:
            raise EvaluationError(f"column {name!r} appears twice")
        try:
            value = float(cell)
        except ValueError:
            continue
        if math.isfinite(value):
            metrics[name] = value
    if not metrics:
        raise EvaluationError("evaluation CSV holds no numeric metric")
    return metrics


def _lookup(metrics: dict[str, float], metric: str) -> float | None:
    wanted = metric_key(metric)
    for name, value in metrics.items():
        if metric_key(name) == wanted:
            return value
    return None


class HoldoutSettings(BaseModel):
    """How a run in ``holdout`` mode splits its data.

    ``fraction`` of the rows (chosen by a seeded hash of each row's number; the seed is the
    run's id) are held out, or, with ``time_column``, the newest ``fraction`` of the rows by
    that column. A holdout of fewer than ``min_rows`` rows cannot judge a model: the run then
    says so and is judged in ``reported`` mode. ``label`` names the label column (unset: the
    training service's ``label_column``).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    fraction: float = Field(default=0.2, gt=0.0, lt=1.0)
    min_rows: int = Field(default=30, ge=2, le=10_000_000)
    time_column: str | None = Field(default=None, min_length=1, max_length=200)
    label: str | None = Field(default=None, min_length=1, max_length=200)


class Gate(BaseModel):
    """When a new model may replace the deployed one.

    The default fits regression: Coefficient of Determination, higher is better, no absolute
    threshold, and at most 10% worse than the deployed model. ``direction`` defaults from the
    metric's name for Evaluate Model's known columns and is required for any other metric.
    ``max_regression`` is a fraction of the deployed model's value (``0.1`` = 10% worse);
    ``max_regression_absolute`` an allowance in the metric's own units (with both set, the
    smaller allowance applies).

    ``evaluation`` is ``holdout`` (both models scored on the same held-out rows; the default
    of tenants onboarded through the API) or ``reported`` (the candidate's own Evaluate Model
    figures against those the deployed model reported; what a gate stored without the field
    means). ``confidence`` (holdout mode only) also demands that a seeded paired bootstrap of
    ``resamples`` resamples puts the lower bound of the improvement's ``confidence`` interval
    above the allowed regression.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    metric: str = Field(default="Coefficient of Determination", min_length=1, max_length=100)
    direction: Direction | None = None
    threshold: float | None = Field(default=None, allow_inf_nan=False)
    max_regression: float | None = Field(default=0.10, ge=0.0, le=10.0)
    evaluation: EvaluationMode = "reported"
    holdout: HoldoutSettings = HoldoutSettings()
    max_regression_absolute: float | None = Field(default=None, ge=0.0, allow_inf_nan=False)
    confidence: float | None = Field(default=None, ge=0.5, lt=1.0)
    resamples: int = Field(default=1000, ge=1000, le=100_000)

    @model_validator(mode="after")
    def _known_direction(self) -> Self:
        if self.direction is None and metric_key(self.metric) not in _DIRECTIONS:
            raise ValueError(f"direction is required for metric {self.metric!r}")
        return self

    @property
    def effective_direction(self) -> Direction:
        """The direction given, else the known one for the metric."""
        return self.direction or _DIRECTIONS[metric_key(self.metric)]

    def allowed_regression(self, baseline: float) -> float | None:
        """How much worse than ``baseline`` a candidate may be (None: any amount)."""
        allowances = []
        if self.max_regression is not None:
            # Relative to |baseline| so the bound stays meaningful for negative values (R² < 0).
            allowances.append(self.max_regression * abs(baseline))
        if self.max_regression_absolute is not None:
            allowances.append(self.max_regression_absolute)
        return min(allowances) if allowances else None


def patched_gate(new: Gate | None, current: Gate | None) -> Gate | None:
    """The gate a PATCH stores: one given without ``evaluation``, or ``null`` (the default
    gate), keeps the tenant's mode (a gate stored without the field, or none, is
    ``reported``)."""
    mode = current.evaluation if current is not None else "reported"
    if new is None:
        return None if mode == "reported" else Gate(evaluation=mode)
    if "evaluation" in new.model_fields_set:
        return new
    return new.model_copy(update={"evaluation": mode})


class Comparison(BaseModel):
    """Champion and challenger measured by retrainq on the same holdout rows.

    ``difference`` and the interval are the improvement of the challenger over the champion
    in the metric's better direction (positive: the challenger is better).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    holdout_rows: int
    holdout_path: str
    challenger_metrics: dict[str, float]
    champion_metrics: dict[str, float] | None = None
    challenger_scored: str
    champion_scored: str | None = None
    champion_model: str | None = None
    challenger_model: str
    difference: float | None = None
    allowed_regression: float | None = None
    interval_low: float | None = None
    interval_high: float | None = None
    confidence: float | None = None
    resamples: int | None = None


class Decision(BaseModel):
    """The gate's verdict on one model, with the numbers it was based on.

    ``value`` is the candidate's metric and ``baseline`` the deployed model's; in ``holdout``
    mode both come from the same held-out rows and ``comparison`` holds the details.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    accepted: bool
    reason: str
    metric: str
    value: float | None = None
    baseline: float | None = None
    evaluation: EvaluationMode = "reported"
    comparison: Comparison | None = None
    note: str | None = Field(
        default=None, description="why a run meant for holdout mode was judged as reported"
    )


def decide(
    gate: Gate, new_metrics: dict[str, float], deployed_metrics: dict[str, float] | None
) -> Decision:
    """Accept or reject a new model by the gate against the deployed model's metrics."""
    metric, higher = gate.metric, gate.effective_direction == "higher_is_better"
    value = _lookup(new_metrics, metric)
    if value is None:
        available = ", ".join(sorted(new_metrics)) or "none"
        return Decision(
            accepted=False,
            reason=f"metric {metric!r} missing from the evaluation (has: {available})",
            metric=metric,
        )
    baseline = _lookup(deployed_metrics, metric) if deployed_metrics else None

    def verdict(accepted: bool, reason: str) -> Decision:
        return Decision(
            accepted=accepted, reason=reason, metric=metric, value=value, baseline=baseline
        )

    if gate.threshold is not None:
        if higher and value < gate.threshold:
            return verdict(False, f"{metric} {value:g} is below the threshold {gate.threshold:g}")
        if not higher and value > gate.threshold:
            return verdict(False, f"{metric} {value:g} is above the threshold {gate.threshold:g}")
    if baseline is None:
        return verdict(True, f"{metric} {value:g} passes; no deployed model to compare with")
    allowed = gate.allowed_regression(baseline)
    if allowed is not None:
        worse_by = baseline - value if higher else value - baseline
        if exceeds(worse_by, allowed):
            return verdict(
                False,
                f"{metric} {value:g} regresses from the deployed {baseline:g} "
                f"by more than {describe_allowance(gate, allowed)}",
            )
    return verdict(True, f"{metric} {value:g} passes against the deployed {baseline:g}")


def describe_allowance(gate: Gate, allowed: float) -> str:
    """The allowed regression in words: ``10%`` when only the relative one is set."""
    if gate.max_regression is not None and gate.max_regression_absolute is None:
        return f"{gate.max_regression:.0%}"
    return f"the allowed {allowed:g}"


def exceeds(amount: float, allowed: float) -> bool:
    """Whether ``amount`` is above ``allowed`` by more than float noise."""
    return amount > allowed and not math.isclose(amount, allowed, abs_tol=1e-12)


def lookup(metrics: dict[str, float], metric: str) -> float | None:
    """The value of ``metric`` (any case and spacing) in ``metrics``, or None."""
    return _lookup(metrics, metric)
