"""The holdout gate's pure parts: columns read from scored CSVs, the decision rule with the
relative and absolute allowances and the bootstrap's lower bound, names of staging endpoints."""

from __future__ import annotations

import random

import pytest

from worker.evaluate import Gate
from worker.naming import ENDPOINT_NAME
from worker.scoring_gate import (
    HoldoutRows,
    Scored,
    ScoredError,
    judge_holdout,
    read_column,
    scored_column,
)
from worker.staging import staging_endpoint_for

RNG = random.Random(3)
LABELS = [RNG.uniform(0, 100) for _ in range(300)]
HOLDOUT = HoldoutRows(LABELS, "data/t/splits/r.holdout.csv")


def scored(noise: float, seed: int) -> Scored:
    """Scores of the labels with gaussian noise."""
    rng = random.Random(seed)
    return Scored([y + rng.gauss(0, noise) for y in LABELS], f"s{seed}.csv", f"m{seed}")


def test_columns_are_read_by_name_and_bad_cells_named() -> None:
    """A scored CSV's column by name; a missing column or a word instead of a number refused."""
    text = "x,Scored Labels\n1,2.5\n2,3.5\n"
    assert read_column(text, "scored labels", "scored rows") == [2.5, 3.5]
    with pytest.raises(ScoredError, match="no column"):
        read_column(text, "Scored Probabilities", "scored rows")
    with pytest.raises(ScoredError, match="line 2"):
        read_column("y\nabc\n", "y", "holdout")
    assert scored_column("AUC") == "Scored Probabilities"
    assert scored_column("Coefficient of Determination") == "Scored Labels"


def test_the_allowances_and_the_bootstrap_bound_decide() -> None:
    """Slightly worse: passes 10% relative, fails a tiny absolute allowance; the bootstrap
    interval of an equal model straddles 0 and fails a zero allowance."""
    champion, close = scored(10, 1), scored(10.6, 2)
    relaxed = judge_holdout(Gate(), HOLDOUT, close, champion, seed=1)
    assert relaxed.accepted
    strict = Gate(max_regression_absolute=0.0001)
    assert not judge_holdout(strict, HOLDOUT, close, champion, seed=1).accepted
    sure = Gate(confidence=0.9, max_regression=0.0)
    decision = judge_holdout(sure, HOLDOUT, close, champion, seed=1)
    comparison = decision.comparison
    assert comparison is not None
    assert comparison.interval_low is not None
    assert comparison.interval_high is not None
    assert comparison.interval_low < 0 < comparison.interval_high
    assert comparison.resamples == 1000
    assert not decision.accepted
    better = judge_holdout(sure, HOLDOUT, scored(2, 3), champion, seed=1)
    assert better.accepted
    assert better.comparison is not None
    assert better.comparison.interval_low is not None
    assert better.comparison.interval_low > 0


def test_a_decision_is_the_same_for_the_same_seed() -> None:
    """The bootstrap is seeded: the decision can be recomputed from the recorded blobs."""
    gate = Gate(confidence=0.9)
    first = judge_holdout(gate, HOLDOUT, scored(9, 4), scored(10, 5), seed=42)
    assert judge_holdout(gate, HOLDOUT, scored(9, 4), scored(10, 5), seed=42) == first


def test_lower_is_better_metrics_turn_into_improvements() -> None:
    """MAE falling is an improvement (positive difference)."""
    gate = Gate(metric="Mean Absolute Error")
    decision = judge_holdout(gate, HOLDOUT, scored(2, 6), scored(10, 7), seed=1)
    assert decision.accepted
    assert decision.comparison is not None
    assert decision.comparison.difference is not None
    assert decision.comparison.difference > 0


def test_staging_endpoints_are_valid_names_distinct_from_live_ones() -> None:
    """24 characters at most, lowercase letters and digits, never the live name or default."""
    from worker.naming import endpoint_name_for

    for tenant in ("a", "acme-co", "x" * 63, "tenant-with-a-long-name-0001"):
        name = staging_endpoint_for(tenant)
        assert ENDPOINT_NAME.fullmatch(name)
        assert name not in (endpoint_name_for(tenant), "default")
        assert staging_endpoint_for(tenant) == name


def test_a_candidate_below_the_threshold_still_records_the_comparison() -> None:
    """Rejected by the threshold with a deployed model scored on the same rows: the decision
    keeps the improvement, its interval and the allowance, like every other decision."""
    gate = Gate(threshold=0.99)
    decision = judge_holdout(gate, HOLDOUT, scored(20, 8), scored(10, 9), seed=1)
    assert not decision.accepted
    assert "below the threshold 0.99" in decision.reason
    comparison = decision.comparison
    assert comparison is not None
    assert decision.value is not None
    assert decision.baseline is not None
    assert comparison.difference is not None
    assert comparison.difference == pytest.approx(decision.value - decision.baseline)
    assert comparison.allowed_regression is not None
    assert comparison.interval_low is not None
    assert comparison.interval_high is not None
    assert comparison.interval_low < comparison.difference < comparison.interval_high
    first = judge_holdout(gate, HOLDOUT, scored(20, 8), None, seed=1)
    assert not first.accepted
    assert first.comparison is not None
    assert first.comparison.difference is None
