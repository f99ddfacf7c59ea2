"""Worker liveness: a short heartbeat per worker, what each holds, and fast recovery.

Each worker process registers under an id of its own (its pod name and a random suffix),
keeps a heartbeat key alive with a short TTL, and records the arq steps it is running (arq's
job start hook adds each; the next heartbeat forgets those that ended, in its own round
trip) and, through the ledger, the parked runs its sweeper has claimed. Every worker looks
for registered workers whose heartbeat has lapsed; the first to find one releases what it
held in one script: arq's in-progress keys of its steps (so arq runs them again at once
instead of after their in-progress TTL) and its sweeper's claims (polled now instead of
after the claim period). A worker that stops cleanly leaves at once.

Releasing a worker that was only paused longer than the TTL is safe: every step writes with
a compare-and-set and a repeated poll is harmless.
"""

from __future__ import annotations

import asyncio
import secrets

import redis.asyncio as aioredis
import structlog
from arq.constants import in_progress_key_prefix

from worker.keys import Keys
from worker.redis_full import FullRedis, is_full
from worker.redisio import reply
from worker.run.ledger import Ledger
from worker.run.scripts import now_ms

log = structlog.get_logger("retrainq.liveness")


def worker_id_for(pod_name: str) -> str:
    """A worker id unique to this process: the pod name and a random suffix."""
    return f"{pod_name}:{secrets.token_hex(4)}"


class Liveness:
    """The heartbeat and the held-steps record of one worker, and recovery of others."""

    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys,
        ledger: Ledger,
        worker_id: str,
        *,
        ttl_seconds: float = 6.0,
        beat_seconds: float = 2.0,
        full_redis: FullRedis | None = None,
    ) -> None:
        self.redis = redis
        self.full_redis = full_redis or FullRedis()
        self.keys = keys
        self.ledger = ledger
        self.worker_id = worker_id
        self.ttl_ms = int(ttl_seconds * 1000)
        self.beat_seconds = beat_seconds
        self.ended: list[str] = []

    async def beat(self) -> None:
        """Renew the heartbeat (and the registration, should a rescuer have removed it), and
        forget the steps that ended since the last beat."""
        ended, self.ended = self.ended, []
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.set(self.keys.worker_heartbeat(self.worker_id), "1", px=self.ttl_ms)
            pipe.zadd(self.keys.workers, {self.worker_id: now_ms()}, nx=True)
            if ended:
                pipe.srem(self.keys.worker_steps(self.worker_id), *ended)
            try:
                await pipe.execute()
            except BaseException:
                self.ended = ended + self.ended  # forgotten at the next beat instead
                raise

    async def step_started(self, job_id: str) -> None:
        """Record that this worker runs the arq job ``job_id``."""
        await reply(self.redis.sadd(self.keys.worker_steps(self.worker_id), job_id))

    async def step_ended(self, job_id: str) -> None:
        """The arq job ``job_id`` ended (or went back to arq); its record goes at the next beat.

        Until then a release of this worker would also delete the in-progress key of a job
        that ended, which is harmless: it is gone already, or the job is done.
        """
        self.ended.append(job_id)

    async def recover_lapsed(self) -> int:
        """Release what every registered worker whose heartbeat lapsed held; returns how
        many workers were released."""
        ids: list[str] = await self.redis.zrange(self.keys.workers, 0, -1)
        async with self.redis.pipeline(transaction=False) as pipe:
            for worker_id in ids:
                pipe.exists(self.keys.worker_heartbeat(worker_id))
            alive = await pipe.execute()
        released = 0
        for worker_id, beating in zip(ids, alive, strict=True):
            if beating or worker_id == self.worker_id:
                continue
            steps, claims = await self.ledger.release_lapsed(worker_id, in_progress_key_prefix)
            if steps or claims:
                log.warning("worker.released", worker=worker_id, steps=steps, claims=claims)
            released += 1
        return released

    async def run_forever(self) -> None:
        """Beat and look for lapsed workers until cancelled (errors skip a beat)."""
        while True:
            try:
                await self.beat()
                await self.recover_lapsed()
            except Exception as exc:  # a Redis outage: the next beat may succeed
                if is_full(exc):
                    self.full_redis.refusal("liveness")
                else:
                    log.warning("liveness.failed", error=str(exc))
            await asyncio.sleep(self.beat_seconds)

    async def leave(self) -> None:
        """Deregister on a clean stop, releasing the claims its sweeper left unfinished."""
        await reply(self.redis.delete(self.keys.worker_heartbeat(self.worker_id)))
        await self.ledger.release_lapsed(self.worker_id, in_progress_key_prefix)
