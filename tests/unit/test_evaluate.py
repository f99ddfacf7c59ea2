"""The evaluation gate: parsing Evaluate Model CSVs and accepting or rejecting models."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from worker.evaluate import Decision, EvaluationError, Gate, decide, parse_evaluation_csv

REGRESSION_CSV = (
    "Mean Absolute Error,Root Mean Squared Error,Relative Absolute Error,"
    "Relative Squared Error,Coefficient of Determination\n"
    "12.5,20.25,0.31,0.12,0.88\n"
)


def test_parses_a_regression_evaluation() -> None:
    """Every Evaluate Model column becomes a float metric under its own name."""
    assert parse_evaluation_csv(REGRESSION_CSV) == {
        "Mean Absolute Error": 12.5,
        "Root Mean Squared Error": 20.25,
        "Relative Absolute Error": 0.31,
        "Relative Squared Error": 0.12,
        "Coefficient of Determination": 0.88,
    }


def test_tolerates_quotes_whitespace_bom_and_blank_lines() -> None:
    """Quoted headers, padded cells, a BOM, CRLF and blank lines do not matter."""
    text = '\ufeff"AUC" , "Accuracy"\r\n\r\n  0.91 ,"0.85" \r\n\r\n'
    assert parse_evaluation_csv(text) == {"AUC": 0.91, "Accuracy": 0.85}


def test_skips_label_and_non_finite_columns() -> None:
    """Text cells and NaN/inf are left out; the numeric metrics remain."""
    text = "Positive Label,AUC,Accuracy,Recall\nyes,0.9,NaN,inf\n"
    assert parse_evaluation_csv(text) == {"AUC": 0.9}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "found 0 rows"),
        ("AUC\n", "found 1 rows"),
        ("AUC\n0.9\n0.8\n", "found 3 rows"),
        ("AUC,Accuracy\n0.9\n", "2 columns"),
        ("AUC,AUC\n0.9,0.8\n", "appears twice"),
        ("a,b\nx,y\n", "no numeric metric"),
        ("AUC,\n0.9,1\n", "no name"),
        ("<html><body>oops</body></html>\n", "found 1 rows"),
    ],
)
def test_rejects_garbage_with_a_clear_error(text: str, message: str) -> None:
    """Anything but one header row and one row of numbers is an EvaluationError."""
    with pytest.raises(EvaluationError, match=message):
        parse_evaluation_csv(text)


def test_default_gate_is_documented_regression_gate() -> None:
    """R², higher is better, no threshold, 10% maximum regression."""
    gate = Gate()
    assert gate.metric == "Coefficient of Determination"
    assert gate.effective_direction == "higher_is_better"
    assert gate.threshold is None
    assert gate.max_regression == pytest.approx(0.10)


@pytest.mark.parametrize(
    ("metric", "direction"),
    [
        ("AUC", "higher_is_better"),
        ("F1 Score", "higher_is_better"),
        ("accuracy", "higher_is_better"),
        ("Mean Absolute Error", "lower_is_better"),
        ("Root  Mean Squared Error", "lower_is_better"),
        ("Relative Squared Error", "lower_is_better"),
    ],
)
def test_direction_defaults_from_the_metric(metric: str, direction: str) -> None:
    """Known metrics know their direction, case- and whitespace-insensitively."""
    assert Gate(metric=metric).effective_direction == direction


def test_unknown_metric_needs_a_direction() -> None:
    """A metric the gate cannot classify must state its direction."""
    with pytest.raises(ValidationError, match="direction is required"):
        Gate(metric="Custom Score")
    assert Gate(metric="Custom Score", direction="lower_is_better").effective_direction == (
        "lower_is_better"
    )


def test_first_model_is_accepted_without_baseline() -> None:
    """With nothing deployed, only the threshold applies."""
    decision = decide(Gate(), {"Coefficient of Determination": 0.2}, None)
    assert decision == Decision(
        accepted=True,
        reason=decision.reason,
        metric="Coefficient of Determination",
        value=0.2,
        baseline=None,
    )
    assert "no deployed model" in decision.reason


def test_missing_metric_is_rejected_with_reason() -> None:
    """A model whose evaluation lacks the gate's metric is never accepted."""
    decision = decide(Gate(metric="AUC"), {"Accuracy": 0.9}, {"AUC": 0.8})
    assert not decision.accepted
    assert "'AUC' missing" in decision.reason
    assert "Accuracy" in decision.reason
    assert decision.value is None


def test_threshold_bounds_higher_and_lower_metrics() -> None:
    """Below a higher-is-better threshold or above a lower-is-better one is rejected."""
    assert not decide(Gate(metric="AUC", threshold=0.7), {"AUC": 0.69}, None).accepted
    assert decide(Gate(metric="AUC", threshold=0.7), {"AUC": 0.7}, None).accepted
    mae = Gate(metric="Mean Absolute Error", threshold=10.0)
    assert not decide(mae, {"Mean Absolute Error": 10.5}, None).accepted
    assert decide(mae, {"Mean Absolute Error": 9.5}, None).accepted


def test_regression_within_the_allowance_is_accepted() -> None:
    """R² 0.72 against a deployed 0.80 is exactly 10% worse: still accepted."""
    decision = decide(
        Gate(), {"Coefficient of Determination": 0.72}, {"Coefficient of Determination": 0.8}
    )
    assert decision.accepted
    assert decision.baseline == pytest.approx(0.8)


def test_regression_beyond_the_allowance_is_rejected() -> None:
    """R² 0.70 against a deployed 0.80 regresses more than 10%: rejected, numbers kept."""
    decision = decide(
        Gate(), {"Coefficient of Determination": 0.70}, {"Coefficient of Determination": 0.8}
    )
    assert not decision.accepted
    assert "regresses" in decision.reason
    assert decision.value == pytest.approx(0.7)
    assert decision.baseline == pytest.approx(0.8)


def test_lower_is_better_regression_is_measured_upwards() -> None:
    """An error metric that grows by more than the allowance is rejected."""
    gate = Gate(metric="Root Mean Squared Error", max_regression=0.05)
    deployed = {"Root Mean Squared Error": 20.0}
    assert decide(gate, {"Root Mean Squared Error": 21.0}, deployed).accepted
    assert not decide(gate, {"Root Mean Squared Error": 21.1}, deployed).accepted
    assert decide(gate, {"Root Mean Squared Error": 5.0}, deployed).accepted


def test_negative_baseline_uses_its_magnitude() -> None:
    """With R² below zero the allowance is a fraction of |baseline|, not a sign flip."""
    deployed = {"Coefficient of Determination": -0.5}
    assert decide(Gate(), {"Coefficient of Determination": -0.54}, deployed).accepted
    assert not decide(Gate(), {"Coefficient of Determination": -0.6}, deployed).accepted


def test_no_max_regression_accepts_any_change() -> None:
    """Without max_regression, a worse model passes as long as the threshold holds."""
    gate = Gate(max_regression=None)
    deployed = {"Coefficient of Determination": 0.9}
    assert decide(gate, {"Coefficient of Determination": 0.1}, deployed).accepted


def test_deployed_without_the_metric_counts_as_no_baseline() -> None:
    """An older model evaluated on other metrics does not block the new one."""
    decision = decide(Gate(metric="AUC"), {"AUC": 0.8}, {"Accuracy": 0.9})
    assert decision.accepted
    assert decision.baseline is None


def test_gate_and_decision_round_trip_as_json() -> None:
    """Both are stored on records, so they survive JSON."""
    gate = Gate(metric="AUC", threshold=0.6, max_regression=0.2)
    assert Gate.model_validate_json(gate.model_dump_json()) == gate
    decision = decide(gate, {"AUC": 0.7}, {"AUC": 0.75})
    assert Decision.model_validate_json(decision.model_dump_json()) == decision
