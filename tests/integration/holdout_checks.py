"""The holdout gate's invariant, recomputed from what a run recorded: its holdout blob and
the scored blobs the remote service wrote. Shared by the bulk invariant test and the crash
test of the gate's crash points."""

from __future__ import annotations

import math

from tests.integration.fleet import Fleet
from worker.evaluate import Gate
from worker.schemas import Run, RunState
from worker.scoring_gate import (
    HoldoutRows,
    Scored,
    bootstrap_seed,
    judge_holdout,
    measure_kind,
    read_column,
    scored_column,
)


def _close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


async def holdout_problems(
    fleet: Fleet, run: Run, gate: Gate, deployed_runs: set[str]
) -> list[str]:
    """What in ``run`` (judged in holdout mode) disagrees with a recomputation from its
    recorded blobs: both metrics, the decision by the gate rule, deployed <=> accepted."""
    decision, holdout = run.decision, run.holdout
    if decision is None or holdout is None or decision.comparison is None:
        return [f"{run.id}: holdout mode without a recorded comparison ({run.state.value})"]
    comparison = decision.comparison
    problems: list[str] = []
    labels = read_column(
        (await fleet.blobs.download(holdout.holdout_path)).decode(), holdout.label, "holdout"
    )
    column = scored_column(gate.metric)
    scored: dict[str, Scored] = {}
    for job in run.scoring_jobs:
        text = (await fleet.blobs.download(job.output_path)).decode()
        scored[job.role] = Scored(
            read_column(text, column, job.role), job.output_path, job.model_path
        )
    challenger, champion = scored["challenger"], scored.get("champion")
    if comparison.challenger_scored != challenger.scored_path:
        problems.append(f"{run.id}: the decision names another challenger blob")
    if len(labels) != comparison.holdout_rows:
        problems.append(f"{run.id}: {len(labels)} holdout rows, {comparison.holdout_rows} recorded")
    for name, value in measure_kind(gate.metric, labels, challenger.scores).items():
        if not _close(value, comparison.challenger_metrics.get(name)):
            problems.append(
                f"{run.id}: challenger {name} {value} != {comparison.challenger_metrics.get(name)}"
            )
    if champion is not None:
        recorded = comparison.champion_metrics or {}
        for name, value in measure_kind(gate.metric, labels, champion.scores).items():
            if not _close(value, recorded.get(name)):
                problems.append(f"{run.id}: champion {name} {value} != {recorded.get(name)}")
    again = judge_holdout(
        gate,
        HoldoutRows(labels, holdout.holdout_path),
        challenger,
        champion,
        seed=bootstrap_seed(run.id),
    )
    if again.comparison is not None and champion is not None:
        for field in ("difference", "interval_low", "interval_high"):
            if not _close(getattr(again.comparison, field), getattr(comparison, field)):
                problems.append(f"{run.id}: {field} recomputed differs from the recorded one")
    if again.accepted != decision.accepted or not _close(again.value, decision.value):
        problems.append(
            f"{run.id}: recomputed {again.accepted} ({again.reason}), recorded {decision.accepted}"
        )
    deployed = run.id in deployed_runs
    if deployed != decision.accepted or deployed != (run.state is RunState.SUCCEEDED):
        problems.append(
            f"{run.id}: deployed {deployed}, accepted {decision.accepted}, {run.state.value}"
        )
    return problems
