"""Crash points for chaos tests: kill the worker at a named place, once per run.

A worker started with ``RETRAINQ_FAILPOINTS='["bes.after_submit"]'`` exits at once (as if
SIGKILLed: no cleanup, no arq bookkeeping) the first time a run reaches that point. A marker
in Redis (SET NX) makes the restarted worker pass the point for that run next time, so each
run crashes once per point and must then finish correctly. With no names configured (the
default, and always in production) ``hit`` returns before touching Redis.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable

import redis.asyncio as aioredis
import structlog

from worker.keys import Keys

log = structlog.get_logger("retrainq.failpoints")

# Names of the points the worker has, and where each sits (see steps.py, the actions of
# worker/run/actions.py and deploy.py).
POINTS = {
    "bes.after_submit": "BES submit answered, job id not recorded yet",
    "bes.after_record": "job id recorded, job not started yet",
    "bes.after_start": "job started, training state not recorded yet",
    "split.after_write": "training and holdout blobs written, the split not recorded yet",
    "bes.poll": "status read while training (by a step or the sweeper), poll not recorded yet",
    "evaluate.after_read": "evaluation CSV read, gate decision not recorded yet",
    "staging.after_patch": "candidate PATCHed onto the staging endpoint, not recorded yet",
    "scoring.after_submit": "scoring submit answered, its job id not recorded yet",
    "scoring.after_start": "scoring job started, its start not recorded yet",
    "deploy.after_patch": "classic endpoint PATCHed, deployment not recorded yet",
    "deploy.after_arm_put": "ARM web service PUT/PATCHed, deploy_submitted not recorded yet",
    "archive.after_intent": "archive intent recorded, its part not written yet",
    "archive.after_write": "archive part written, its runs not removed from Redis yet",
    "archive.after_remove": "one part's runs removed, the pass's next part not started",
}
# Points only runs judged on a holdout meet; their crash test: tests/chaos/test_holdout_crashes.py.
GATE_POINTS = frozenset(
    {"split.after_write", "staging.after_patch", "scoring.after_submit", "scoring.after_start"}
)
# Points the archiver meets (keyed by part path, not run id); the run crash test skips them.
ARCHIVE_POINTS = frozenset(name for name in POINTS if name.startswith("archive."))

CRASH_EXIT_CODE = 137  # what a SIGKILLed process reports (128 + 9)
MARKER_TTL_SECONDS = 7 * 24 * 3600


class UnknownFailpoint(ValueError):
    """A configured failpoint name the worker does not have."""


class Failpoints:
    """The crash points enabled in this process."""

    def __init__(
        self, names: Iterable[str], redis: aioredis.Redis | None = None, keys: Keys | None = None
    ) -> None:
        self.names = frozenset(names)
        unknown = sorted(self.names - POINTS.keys())
        if unknown:
            raise UnknownFailpoint(f"unknown failpoints {unknown}; known: {sorted(POINTS)}")
        if self.names and redis is None:
            raise ValueError("enabled failpoints need Redis for their once-per-run markers")
        self.redis = redis
        self.keys = keys or Keys()

    async def hit(self, name: str, run_id: str) -> None:
        """Exit the process now if ``name`` is enabled and ``run_id`` never crashed here."""
        if name not in self.names or self.redis is None:
            return
        first = await self.redis.set(
            self.keys.failpoint(name, run_id), "1", nx=True, ex=MARKER_TTL_SECONDS
        )
        if not first:
            return
        log.warning("failpoint.crash", failpoint=name, run_id=run_id)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(CRASH_EXIT_CODE)
