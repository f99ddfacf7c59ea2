"""A Redis that refuses writes (``maxmemory`` reached under ``noeviction``), as workers see it.

Such a Redis still answers reads, and the archiver's scripts (``allow-oom``) still free it.
A worker meeting a refused write pauses what it was doing instead of failing a run: the
run's record is unchanged (its write was refused whole) and stays on the due list, so the
reconciler picks it up again once Redis has room. Every part of the worker reports a
refusal here, and one line a minute says Redis is full.
"""

from __future__ import annotations

import time

import structlog
from redis.exceptions import OutOfMemoryError, ResponseError

log = structlog.get_logger("retrainq.worker")

LOG_EVERY_SECONDS = 60.0
PAUSE_SECONDS = 2.0


def is_full(exc: BaseException) -> bool:
    """Whether ``exc`` is Redis refusing a write for want of memory (alone or in a pipeline,
    whose error wraps the command's)."""
    if isinstance(exc, OutOfMemoryError):
        return True
    return isinstance(exc, ResponseError) and (
        str(exc).startswith("OOM") or "used memory > 'maxmemory'" in str(exc)
    )


class FullRedis:
    """One worker's record of refused writes: ``worker.redis_full`` once a minute at most."""

    def __init__(self, every: float = LOG_EVERY_SECONDS) -> None:
        self.every = every
        self.refused = 0
        self._logged_at: float | None = None

    def refusal(self, where: str) -> None:
        """Count a refused write by ``where`` (a loop or a job), logging if a minute passed."""
        self.refused += 1
        now = time.monotonic()
        if self._logged_at is not None and now - self._logged_at < self.every:
            return
        log.warning(
            "worker.redis_full",
            where=where,
            refused=self.refused,
            detail="Redis refuses writes (maxmemory); runs wait unchanged until it has room",
        )
        self._logged_at = now
        self.refused = 0
