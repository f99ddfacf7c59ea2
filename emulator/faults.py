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

from emulator.config import SURFACES, FaultsConfig, FaultSpec, Surface
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


class SurfaceFaults:
    """One surface's switches: latency, injected errors, commit-then-drop, and their counts."""

    def __init__(self, spec: FaultSpec, rng: random.Random) -> None:
        self.spec = spec
        self.random = rng
        self.fail_next = spec.fail_next
        self.drop_next = spec.commit_then_drop
        self.injected = 0
        self.dropped = 0

    async def before(self) -> None:
        """Apply latency, then raise the injected error if this call is to fail."""
        if self.spec.latency_seconds:
            await asyncio.sleep(self.spec.latency_seconds)
        if self.fail_next > 0:
            self.fail_next -= 1
        elif not (self.spec.error_rate and self.random.random() < self.spec.error_rate):
            return
        self.injected += 1
        raise injected_error(self.spec.error_status)

    def take_drop(self) -> bool:
        """Whether this call's reply is to be dropped after its effect was committed."""
        if self.drop_next <= 0:
            return False
        self.drop_next -= 1
        self.dropped += 1
        return True

    def remaining(self) -> dict[str, int]:
        """The counters still to run down."""
        return {"fail_next": self.fail_next, "commit_then_drop": self.drop_next}


def job_fails(rate: float, rng: random.Random) -> bool:
    """Whether a job now finishing fails instead, at failure ``rate``."""
    return bool(rate) and rng.random() < rate


class Faults:
    """The live fault configuration with its remaining counters and random generators."""

    def __init__(self, config: FaultsConfig, seed: int) -> None:
        self._seed = seed
        self.configure(config)

    def configure(self, config: FaultsConfig) -> None:
        """Replace every switch; reseed the generators and zero the counters."""
        self.config = config
        self.surfaces = {
            s: SurfaceFaults(config.surface(s), random.Random(f"{self._seed}:{s}"))
            for s in SURFACES
        }
        self._job_random = random.Random(f"{self._seed}:bes_job")
        self.jobs_failed = 0

    async def before(self, surface: Surface) -> None:
        """Apply latency, then raise the injected error if this call is to fail."""
        await self.surfaces[surface].before()

    def take_drop(self, surface: Surface) -> bool:
        """Whether this call's reply is to be dropped after its effect was committed."""
        return self.surfaces[surface].take_drop()

    def job_fails(self) -> bool:
        """Whether the next BES job to finish is to fail instead."""
        if job_fails(self.config.bes_job_failure_rate, self._job_random):
            self.jobs_failed += 1
            return True
        return False

    @property
    def injected(self) -> dict[Surface, int]:
        """Errors injected so far, by surface."""
        return {s: f.injected for s, f in self.surfaces.items()}

    @property
    def dropped(self) -> dict[Surface, int]:
        """Replies dropped so far, by surface."""
        return {s: f.dropped for s, f in self.surfaces.items()}

    def snapshot(self) -> dict[str, Any]:
        """The configuration, remaining counters and what was injected so far."""
        return {
            "config": self.config.model_dump(mode="json"),
            "remaining": {s: f.remaining() for s, f in self.surfaces.items()},
            "injected": self.injected,
            "dropped": self.dropped,
            "jobs_failed": self.jobs_failed,
        }


def drop_connection(request: web.Request) -> None:
    """Close the client's connection now (the effect is committed, the reply is lost)."""
    transport = request.transport
    if transport is not None:
        transport.abort()
    raise ConnectionDropped
