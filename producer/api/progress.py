"""A batch's progress from its counters: its state, throughput and ETA (pure functions)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from producer.schemas import BatchState, BatchStatus
from worker.schemas import TERMINAL_STATES, Batch, RunState, utcnow

IN_FLIGHT_STATES = frozenset(
    {
        RunState.SUBMITTING,
        RunState.TRAINING,
        RunState.EVALUATING,
        RunState.STAGING,
        RunState.SCORING,
        RunState.DEPLOYING,
    }
)
# Runs ended before a pace is given (fewer only when the whole batch is smaller).
MIN_ENDED_FOR_PACE = 2


def batch_state(counts: Mapping[str, int], total: int) -> BatchState:
    """What became of a batch from its runs counted by state (see ``BatchStatus.state``)."""
    done = sum(counts.get(state.value, 0) for state in TERMINAL_STATES)
    if done < total:
        return "running"
    failed = counts.get(RunState.FAILED.value, 0)
    cancelled = counts.get(RunState.CANCELLED.value, 0)
    if failed == 0:
        return "cancelled" if cancelled else "succeeded"
    if failed + cancelled >= done:
        return "failed"
    return "finished_with_failures"


def pace(
    counts: Mapping[str, int], total: int, elapsed_seconds: float
) -> tuple[float | None, float | None]:
    """Throughput (runs ended per second over ``elapsed_seconds`` since the batch was created)
    and ETA in seconds, or None for both until enough is known (see ``BatchStatus``)."""
    done = sum(counts.get(state.value, 0) for state in TERMINAL_STATES)
    in_flight = sum(counts.get(state.value, 0) for state in IN_FLIGHT_STATES)
    enough = done >= min(MIN_ENDED_FOR_PACE, total) and done >= in_flight and done > 0
    if not enough or elapsed_seconds <= 0:
        return None, 0.0 if done >= total else None
    throughput = done / elapsed_seconds
    return throughput, max(0, total - done) / throughput


def batch_status(
    batch: Batch, counters: Mapping[str, int], now: datetime | None = None
) -> BatchStatus:
    """Counts by state, state, progress, throughput and ETA of a batch from its counters."""
    counts = {state.value: max(0, counters.get(f"n:{state.value}", 0)) for state in RunState}
    done = sum(counts[state.value] for state in TERMINAL_STATES)
    total = batch.total
    end = (now or utcnow()).timestamp()
    last = counters.get("last_finished_ms")
    if done >= total and last is not None:
        end = last / 1000  # an ended batch keeps the pace it had
    throughput, eta = pace(counts, total, end - batch.created_at.timestamp())
    return BatchStatus(
        id=batch.id,
        created_at=batch.created_at,
        reason=batch.reason,
        total=total,
        done=done,
        progress=min(1.0, done / total) if total else 1.0,
        counts=counts,
        state=batch_state(counts, total),
        throughput_per_second=throughput,
        eta_seconds=eta,
    )
