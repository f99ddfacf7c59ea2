"""Enqueueing run steps on arq: one function, ids only, a job id per (run, version)."""

from __future__ import annotations

from datetime import timedelta

from arq.connections import ArqRedis

ADVANCE = "advance"
OFFBOARD = "offboard"

# A step that has not started this long after it was due is dropped by arq; the reconciler
# re-enqueues the run from its record, so nothing is lost.
STEP_EXPIRY = timedelta(hours=1)


def advance_job_id(run_id: str, version: int) -> str:
    """The arq job id of the step that advances ``run_id`` from ``version``."""
    return f"{ADVANCE}:{run_id}:{version}"


class StepQueue:
    """Puts ``advance(run_id)`` steps on the arq queue."""

    def __init__(self, pool: ArqRedis, queue_name: str) -> None:
        self.pool = pool
        self.queue_name = queue_name

    async def advance(self, run_id: str, version: int, delay: float = 0.0) -> bool:
        """Enqueue the next step; False when that exact step is queued or running already."""
        job = await self.pool.enqueue_job(
            ADVANCE,
            run_id,
            _job_id=advance_job_id(run_id, version),
            _queue_name=self.queue_name,
            _defer_by=timedelta(seconds=delay) if delay > 0 else None,
            _expires=STEP_EXPIRY + timedelta(seconds=delay),
        )
        return job is not None

    async def offboard(self, tenant_id: str) -> bool:
        """Enqueue removal of an offboarded tenant's endpoint or web service."""
        job = await self.pool.enqueue_job(
            OFFBOARD,
            tenant_id,
            _job_id=f"{OFFBOARD}:{tenant_id}",
            _queue_name=self.queue_name,
            _expires=STEP_EXPIRY,
        )
        return job is not None
