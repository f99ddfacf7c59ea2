"""Fault switches per surface: error rate, latency, fail-next-N, commit-then-drop, job failures.

Each surface draws from its own ``random.Random`` seeded from ``(seed, surface)``, so the same
sequence of calls meets the same faults on every run. Replacing the configuration (``PUT
/_emulator/faults``) reseeds the generators and restarts the counters.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

from aiohttp import web

from emulator.config import SURFACES, FaultsConfig, Surface
from emulator.errors import ApiError, ConnectionDropped


def injected_error(status: int) -> ApiError:
    """The error body a throttled or failing Azure ML surface answers with."""
    if status == 429:
        return ApiError(
            429,
            "TooManyRequests",
            "The request was throttled; retry later.",
            "RequestThrottled",
            headers={"Retry-After": "1"},
        )
    if status == 500:
        return ApiError(500, "InternalError", "An internal error occurred (injected fault).")
    return ApiError(
        503,
        "ServiceUnavailable",
        "The service is temporarily unavailable; retry later.",
        "RequestThrottled",
        headers={"Retry-After": "1"},
    )


class Faults:
    """The live fault configuration with its remaining counters and random generators."""

    def __init__(self, config: FaultsConfig, seed: int) -> None:
        self._seed = seed
        self.configure(config)

    def configure(self, config: FaultsConfig) -> None:
        """Replace every switch; reseed the generators and zero the counters."""
        self.config = config
        self._fail_next = {s: config.surface(s).fail_next for s in SURFACES}
        self._drop_next = {s: config.surface(s).commit_then_drop for s in SURFACES}
        self._random = {s: random.Random(f"{self._seed}:{s}") for s in SURFACES}
        self._job_random = random.Random(f"{self._seed}:bes_job")
        self.injected = dict.fromkeys(SURFACES, 0)
        self.dropped = dict.fromkeys(SURFACES, 0)
        self.jobs_failed = 0

    async def before(self, surface: Surface) -> None:
        """Apply latency, then raise the injected error if this call is to fail."""
        spec = self.config.surface(surface)
        if spec.latency_seconds:
            await asyncio.sleep(spec.latency_seconds)
        if self._fail_next[surface] > 0:
            self._fail_next[surface] -= 1
        elif not (spec.error_rate and self._random[surface].random() < spec.error_rate):
            return
        self.injected[surface] += 1
        raise injected_error(spec.error_status)

    def take_drop(self, surface: Surface) -> bool:
        """Whether this call's reply is to be dropped after its effect was committed."""
        if self._drop_next[surface] <= 0:
            return False
        self._drop_next[surface] -= 1
        self.dropped[surface] += 1
        return True

    def job_fails(self) -> bool:
        """Whether the next BES job to finish is to fail instead."""
        rate = self.config.bes_job_failure_rate
        if rate and self._job_random.random() < rate:
            self.jobs_failed += 1
            return True
        return False

    def snapshot(self) -> dict[str, Any]:
        """The configuration, remaining counters and what was injected so far."""
        return {
            "config": self.config.model_dump(mode="json"),
            "remaining": {
                s: {"fail_next": self._fail_next[s], "commit_then_drop": self._drop_next[s]}
                for s in SURFACES
            },
            "injected": dict(self.injected),
            "dropped": dict(self.dropped),
            "jobs_failed": self.jobs_failed,
        }


def drop_connection(request: web.Request) -> None:
    """Close the client's connection now (the effect is committed, the reply is lost)."""
    transport = request.transport
    if transport is not None:
        transport.abort()
    raise ConnectionDropped
