"""How ``retrainq runs show`` words a run that is retrying, and ETAs."""

from __future__ import annotations

import io
from datetime import UTC, datetime

from rich.console import Console

from producer.api.examples import BATCH, DEPLOYED, RUN
from producer.cli.render import eta, show_models, show_run
from producer.schemas import BatchStatus, Models
from worker.schemas import Run


def shown(run: Run) -> str:
    """``show_run`` as plain text."""
    buffer = io.StringIO()
    show_run(Console(file=buffer, width=200), run)
    return buffer.getvalue()


def test_a_retrying_run_shows_its_last_error_failures_and_next_try() -> None:
    """While a run retries, its last transient error, failure count and next try are shown."""
    run = Run.model_validate(
        RUN
        | {
            "state": "submitting",
            "last_error": "BES answered 429 Too Many Requests",
            "step_failures": 2,
            "next_attempt_at": datetime(2026, 12, 4, 9, 1, tzinfo=UTC),
        }
    )
    text = shown(run)
    assert (
        "retrying          BES answered 429 Too Many Requests (failures 2, next try "
        "2026-12-04 09:01:00Z)"
    ) in text


def test_an_ended_run_shows_no_retry_line() -> None:
    """A run that ended says nothing about retries, whatever its last error was."""
    run = Run.model_validate(RUN | {"last_error": "a 503 long ago", "step_failures": 1})
    assert "retrying" not in shown(run)


def test_eta_is_unknown_until_the_api_knows_it() -> None:
    """No ETA from the API reads 'unknown'; seconds read as minutes past a minute."""
    status = BatchStatus.model_validate(BATCH)
    assert eta(status) == "38s"
    assert eta(status.model_copy(update={"eta_seconds": None})) == "unknown"
    assert eta(status.model_copy(update={"eta_seconds": 125.0})) == "2m05s"


HOLDOUT_DECISION = {
    "accepted": False,
    "reason": "on 120 held-out rows, Coefficient of Determination of the candidate is 0.61",
    "metric": "Coefficient of Determination",
    "value": 0.61,
    "baseline": 0.82,
    "evaluation": "holdout",
    "comparison": {
        "holdout_rows": 120,
        "holdout_path": "data/rental001/splits/r.holdout.csv",
        "challenger_metrics": {"Coefficient of Determination": 0.61, "Mean Absolute Error": 40.5},
        "champion_metrics": {"Coefficient of Determination": 0.82, "Mean Absolute Error": 30.25},
        "challenger_scored": "models/rental001/r.challenger.scored.csv",
        "champion_scored": "models/rental001/r.champion.scored.csv",
        "challenger_model": "models/rental001/r.ilearner",
        "champion_model": "models/rental001/q.ilearner",
        "difference": -0.21,
        "allowed_regression": 0.082,
        "interval_low": -0.3,
        "interval_high": -0.12,
        "confidence": 0.9,
        "resamples": 1000,
    },
}
SPLIT = {
    "seed": "r",
    "fraction": 0.2,
    "train_path": "data/rental001/splits/r.train.csv",
    "holdout_path": "data/rental001/splits/r.holdout.csv",
    "train_rows": 480,
    "holdout_rows": 120,
    "label": "cnt",
}


def test_a_holdout_run_shows_both_models_on_the_same_rows() -> None:
    """The deployed model and the candidate side by side per metric, the change, the gate's
    improvement with its interval and allowance, the split and the verdict with its reason."""
    run = Run.model_validate(
        RUN
        | {
            "state": "rejected",
            "decision": HOLDOUT_DECISION,
            "evaluation": "holdout",
            "holdout": SPLIT,
        }
    )
    text = shown(run)
    assert "holdout: 120 rows held out (20% of the rows, seeded by the run), trained on 480" in text
    assert "rejected: on 120 held-out rows" in text
    assert "deployed model -> candidate on the same 120 held-out rows" in text
    row = next(line for line in text.splitlines() if "Coefficient of Determination (gate)" in line)
    assert [cell.strip() for cell in row.split("│")[2:5]] == ["0.82", "0.61", "-0.21"]
    mae = next(line for line in text.splitlines() if "Mean Absolute Error" in line)
    assert [cell.strip() for cell in mae.split("│")[2:5]] == ["30.25", "40.5", "+10.25"]
    assert (
        "improvement  -0.21 (positive: the candidate is better); 90% interval [-0.3, -0.12] "
        "(1000 resamples); allowed regression 0.082"
    ) in text


def test_a_reported_run_says_why_it_was_not_judged_on_held_out_rows() -> None:
    """A fallback to the reported figures names the mode and the note; no comparison table."""
    note = "holdout evaluation needs a classic target (a staging endpoint): judged on ..."
    decision = {**DECISION_REPORTED, "note": note}
    run = Run.model_validate(
        RUN | {"evaluation": "reported", "evaluation_note": note, "decision": decision}
    )
    text = shown(run)
    assert f"reported: each model's own Evaluate Model figures (different rows); {note}" in text
    assert "held-out rows" not in text


def test_a_failed_run_has_not_reached_the_gate() -> None:
    """A run that failed before its gate says so."""
    run = Run.model_validate(RUN | {"state": "failed", "decision": None, "error": "BES failed"})
    assert "gate              not reached" in shown(run)


DECISION_REPORTED = {
    "accepted": True,
    "reason": "Coefficient of Determination 0.91 passes against the deployed 0.9",
    "metric": "Coefficient of Determination",
    "value": 0.91,
    "baseline": 0.9,
    "evaluation": "reported",
}


def test_the_model_history_shows_what_each_version_was_judged_on() -> None:
    """Each deployed version: the model before it and this one on the same rows, the change;
    a rollback says so; the serving version is marked."""
    deployed = DEPLOYED | {"decision": HOLDOUT_DECISION | {"accepted": True}}
    rollback = DEPLOYED | {"run_id": "r2", "seq": 4, "rollback_of": RUN["id"], "decision": None}
    models = Models.model_validate({"current": rollback, "history": [rollback, deployed]})
    buffer = io.StringIO()
    show_models(Console(file=buffer, width=200), models)
    lines = buffer.getvalue().splitlines()
    newest = next(line for line in lines if "v4 (serving)" in line)
    assert "rollback" in newest
    judged = next(line for line in lines if "│ v3 " in line)
    cells = [cell.strip() for cell in judged.split("│")[4:8]]
    assert cells == ["120 held-out rows", "0.82", "0.61", "-0.21"]
