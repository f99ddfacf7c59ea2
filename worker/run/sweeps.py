"""The sweeper's decisions for parked training runs, as pure functions (``worker/sweeper.py``).

A parked run either needs no status poll (it is gone, finished already, or must wake for a
cancel or its deadline) or its poll decides: poll again later, or wake its step.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from worker.azureml.bes import JobState
from worker.polling import poll_interval, training_age
from worker.run.actions import Policy, Tick
from worker.run.model import Run, RunState


def still_running(state: JobState) -> bool:
    """Whether a job in ``state`` has not ended yet (queued jobs count as running)."""
    return state in (JobState.NOT_STARTED, JobState.RUNNING)


def next_poll(run: Run, tick: Tick, policy: Policy, expected: float | None) -> float:
    """Seconds until the next status poll of a run whose job still runs (steps and sweeper)."""
    return poll_interval(
        training_age(run, tick.now),
        policy.poll_min_seconds,
        policy.poll_max_seconds,
        tick.draw,
        expected,
    )


# --- the sweeper's decision -----------------------------------------------------------------


class Sweep(StrEnum):
    """What a sweep decided for one parked run."""

    RUNNING = "running"  # poll again later
    WOKEN = "woken"  # its step must run now
    GONE = "gone"  # no longer a parked training run


@dataclass(frozen=True)
class Swept:
    """One parked run after a sweep: the outcome and what the sweeper records for it."""

    outcome: Sweep
    poll_in: float = 0.0  # RUNNING: seconds until the next poll
    hold: bool = False  # keep the slot's lease (the job still runs, or may)
    release: bool = False  # the job ended: give its slot back now
    finished: bool = False  # the job finished: its step skips a poll
    duration: float | None = None  # the finished job's duration, for the poll schedule


def needs_poll(run: Run | None, tick: Tick) -> Swept | None:
    """The outcome of a parked run that needs no status poll, or None if it needs one."""
    if run is None or run.state is not RunState.TRAINING or not run.bes_job_id:
        return Swept(Sweep.GONE)
    if run.bes_finished_seen:
        # Its slot and duration were handled when it was seen finished; a claim that
        # outlasted the wake only needs the wake again, not another poll.
        return Swept(Sweep.WOKEN)
    if run.cancel_requested or tick.now > run.deadline_at:
        return Swept(Sweep.WOKEN, hold=True)
    return None


def swept(
    run: Run, state: JobState | None, tick: Tick, policy: Policy, expected: float | None
) -> Swept:
    """What a poll of a parked run's job decided; ``state`` None: the poll failed."""
    if state is None:  # the step owns retries and throttling; the job may still run
        return Swept(Sweep.WOKEN, hold=True)
    if still_running(state):
        return Swept(Sweep.RUNNING, poll_in=next_poll(run, tick, policy, expected), hold=True)
    if state is JobState.FINISHED:
        age = training_age(run, tick.now)
        return Swept(Sweep.WOKEN, release=True, finished=True, duration=age)
    return Swept(Sweep.WOKEN, release=True)
