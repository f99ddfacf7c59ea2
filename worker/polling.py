"""When to poll a BES job next: pure functions of its age and of how long jobs usually take.

Without history a job is polled fast while young and more slowly as it ages (a fifth of its
age, between the configured bounds). Once a training service has finished enough jobs, the
typical duration is known: a job is then left alone until shortly before it is expected to
end (polled at most ``maximum`` apart, which keeps its slot lease alive) and polled often
around that time, so a finished job is noticed within a few percent of its duration.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from worker.schemas import Run, RunState, utcnow

# The estimate is a low quantile of recent durations, so most jobs end after it.
ESTIMATE_QUANTILE = 0.2
MIN_SAMPLES = 8
# Polling starts this fraction of the estimate into the job ...
NEAR_END = 0.9
# ... and from then on every this fraction of the job's age (never faster than NEAR_END_MIN s).
NEAR_END_STEP = 0.05
NEAR_END_MIN = 0.1


def training_age(run: Run, now: datetime | None = None) -> float:
    """Seconds since the run's BES job was started (since it entered ``training``)."""
    started = run.phases.get(RunState.TRAINING.value, run.updated_at)
    return ((now or utcnow()) - started).total_seconds()


def expected_duration(samples: Sequence[float]) -> float | None:
    """The duration most jobs outlast (a low quantile of ``samples``), or None if too few."""
    if len(samples) < MIN_SAMPLES:
        return None
    ordered = sorted(samples)
    return ordered[int(ESTIMATE_QUANTILE * (len(ordered) - 1))]


def poll_interval(
    age: float,
    minimum: float,
    maximum: float,
    jitter: float = 0.0,
    expected: float | None = None,
) -> float:
    """Seconds until the next status poll of a job ``age`` seconds old.

    ``jitter`` (0 to 1, drawn by the caller) stretches long waits by up to 10 %, so jobs
    started together (a bulk wave) drift apart instead of being polled in bursts.
    """
    stretch = 1.0 + 0.1 * jitter
    if expected is None:
        return max(minimum, min(maximum, age * 0.2)) * stretch
    start = expected * NEAR_END
    if age < start:
        wait = start - age
        if wait >= maximum:
            return maximum * stretch
        return max(NEAR_END_MIN, wait)
    return max(NEAR_END_MIN, min(maximum, age * NEAR_END_STEP))
