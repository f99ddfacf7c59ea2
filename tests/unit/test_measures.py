"""retrainq's own metrics agree with scikit-learn's on generated data; the bootstrap is paired."""

from __future__ import annotations

import random

import pytest
from sklearn import metrics as sk

from worker import measures as ms


def regression_rows(n: int = 400, seed: int = 1) -> tuple[list[float], list[float]]:
    """Labels and noisy predictions of them."""
    rng = random.Random(seed)
    labels = [rng.uniform(0, 500) for _ in range(n)]
    return labels, [y + rng.gauss(0, 40) for y in labels]


def classification_rows(n: int = 400, seed: int = 2) -> tuple[list[float], list[float]]:
    """0/1 labels and probabilities that lean towards them, with ties."""
    rng = random.Random(seed)
    labels = [float(rng.random() < 0.4) for _ in range(n)]
    scores = [round(min(1.0, max(0.0, 0.35 * y + rng.uniform(0, 0.65))), 2) for y in labels]
    return labels, scores


def test_regression_metrics_match_scikit_learn() -> None:
    """MAE, RMSE, R² as sklearn computes them; the relative errors by their definitions."""
    y, s = regression_rows()
    assert ms.mean_absolute_error(y, s) == pytest.approx(sk.mean_absolute_error(y, s))
    assert ms.root_mean_squared_error(y, s) == pytest.approx(sk.mean_squared_error(y, s) ** 0.5)
    assert ms.coefficient_of_determination(y, s) == pytest.approx(sk.r2_score(y, s))
    mean = sum(y) / len(y)
    rae = sum(abs(a - b) for a, b in zip(y, s, strict=True)) / sum(abs(a - mean) for a in y)
    assert ms.relative_absolute_error(y, s) == pytest.approx(rae)
    assert ms.relative_squared_error(y, s) == pytest.approx(1 - sk.r2_score(y, s))


def test_classification_metrics_match_scikit_learn() -> None:
    """Accuracy, precision, recall, F1 at 0.5, AUC with ties, log loss."""
    y, s = classification_rows()
    predicted = [1.0 if p >= 0.5 else 0.0 for p in s]
    assert ms.accuracy(y, s) == pytest.approx(sk.accuracy_score(y, predicted))
    assert ms.precision(y, s) == pytest.approx(sk.precision_score(y, predicted))
    assert ms.recall(y, s) == pytest.approx(sk.recall_score(y, predicted))
    assert ms.f1_score(y, s) == pytest.approx(sk.f1_score(y, predicted))
    assert ms.auc(y, s) == pytest.approx(sk.roc_auc_score(y, s))
    assert ms.average_log_loss(y, s) == pytest.approx(sk.log_loss(y, s))


def test_metrics_are_found_by_evaluate_models_column_names() -> None:
    """The gate's metric names (any case and spacing) pick the same functions."""
    y, s = regression_rows(50)
    assert ms.measure("Coefficient  of Determination", y, s) == ms.coefficient_of_determination(
        y, s
    )
    with pytest.raises(ms.MeasureError, match="unknown metric"):
        ms.measure("Fun", y, s)


@pytest.mark.parametrize(
    ("labels", "scores", "message"),
    [([], [], "no rows"), ([1.0], [1.0, 2.0], "1 labels but 2"), ([3.0, 3.0], [1.0, 2.0], "same")],
)
def test_what_cannot_be_measured_says_why(
    labels: list[float], scores: list[float], message: str
) -> None:
    """Empty, mismatched or constant labels raise a MeasureError naming the problem."""
    with pytest.raises(ms.MeasureError, match=message):
        ms.relative_squared_error(labels, scores)


def test_auc_needs_both_classes() -> None:
    """One class only: no AUC."""
    with pytest.raises(ms.MeasureError, match="both classes"):
        ms.auc([1.0, 1.0], [0.2, 0.9])


def test_a_better_challenger_has_a_positive_interval_and_equal_models_straddle_zero() -> None:
    """Paired over the same resampled rows: a clearly better model's whole interval lies
    above zero; a model compared with itself gives exactly zero; the seed fixes the result."""
    y, champion = regression_rows(300, seed=3)
    rng = random.Random(4)
    challenger = [label + rng.gauss(0, 10) for label in y]  # much less noise
    better = ms.paired_bootstrap(ms.coefficient_of_determination, y, champion, challenger)
    assert better.low > 0
    assert better.low <= better.difference <= better.high
    assert better.resamples == 1000
    same = ms.paired_bootstrap(ms.coefficient_of_determination, y, champion, champion)
    assert (same.low, same.difference, same.high) == (0.0, 0.0, 0.0)
    again = ms.paired_bootstrap(ms.coefficient_of_determination, y, champion, challenger)
    assert again == better
