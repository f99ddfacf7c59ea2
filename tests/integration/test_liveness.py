"""Worker heartbeats: what a worker whose heartbeat lapsed held is released once, at once."""

from __future__ import annotations

import redis.asyncio as aioredis
from arq.constants import in_progress_key_prefix

from worker.keys import Keys
from worker.liveness import Liveness, worker_id_for
from worker.redisio import reply
from worker.run.ledger import Ledger
from worker.run.scripts import now_ms

KEYS = Keys("t")


def liveness(redis: aioredis.Redis, name: str) -> Liveness:
    """A worker's liveness under the test prefix."""
    return Liveness(redis, KEYS, Ledger(redis, KEYS), worker_id_for(name), ttl_seconds=60)


async def test_a_lapsed_workers_steps_and_claims_are_released_exactly_once(
    redis: aioredis.Redis,
) -> None:
    """Its steps' in-progress keys go (arq runs them again), its claimed runs are due for a
    poll now, its records go; the second look finds nothing; live workers are left alone."""
    victim, rescuer, bystander = (liveness(redis, n) for n in ("victim", "rescuer", "other"))
    for worker in (victim, rescuer, bystander):
        await worker.beat()
    await victim.step_started("advance:r1:3")
    await redis.set(f"{in_progress_key_prefix}advance:r1:3", "1")
    await bystander.step_started("advance:r2:1")
    await redis.set(f"{in_progress_key_prefix}advance:r2:1", "1")
    await redis.zadd(KEYS.polls, {"parked-1": now_ms() - 1, "parked-2": now_ms() + 60_000})
    assert await victim.ledger.claim_polls(10, 300, owner=victim.worker_id) == ["parked-1"]
    claimed_until = await redis.zscore(KEYS.polls, "parked-1")
    assert claimed_until is not None
    assert claimed_until > now_ms() + 200_000

    assert await rescuer.recover_lapsed() == 0  # everybody beats
    await redis.delete(KEYS.worker_heartbeat(victim.worker_id))  # its TTL ran out
    assert await rescuer.recover_lapsed() == 1

    assert not await redis.exists(f"{in_progress_key_prefix}advance:r1:3")
    assert await redis.exists(f"{in_progress_key_prefix}advance:r2:1")
    due = await redis.zscore(KEYS.polls, "parked-1")
    assert due is not None
    assert due <= now_ms()
    assert (await redis.zscore(KEYS.polls, "parked-2") or 0) > now_ms() + 50_000
    assert not await redis.exists(KEYS.worker_steps(victim.worker_id))
    assert not await redis.exists(KEYS.worker_claims(victim.worker_id))
    assert sorted(await redis.zrange(KEYS.workers, 0, -1)) == sorted(
        [rescuer.worker_id, bystander.worker_id]
    )
    assert await bystander.recover_lapsed() == 0


async def test_a_worker_that_stops_cleanly_leaves_and_gives_back_its_claims(
    redis: aioredis.Redis,
) -> None:
    """leave(): deregistered at once, and the runs its sweeper had claimed are due now."""
    worker = liveness(redis, "leaving")
    await worker.beat()
    await redis.zadd(KEYS.polls, {"parked": now_ms() - 1})
    assert await worker.ledger.claim_polls(10, 300, owner=worker.worker_id) == ["parked"]
    await worker.leave()
    assert await redis.zrange(KEYS.workers, 0, -1) == []
    due = await redis.zscore(KEYS.polls, "parked")
    assert due is not None
    assert due <= now_ms()


async def test_ended_steps_are_forgotten_at_the_next_beat(redis: aioredis.Redis) -> None:
    """A step that ended leaves the worker's record with the next heartbeat, not before."""
    worker = liveness(redis, "beating")
    await worker.step_started("advance:r1:1")
    await worker.step_started("advance:r2:1")
    await worker.step_ended("advance:r1:1")
    assert await reply(redis.smembers(KEYS.worker_steps(worker.worker_id))) == {
        "advance:r1:1",
        "advance:r2:1",
    }
    await worker.beat()
    assert await reply(redis.smembers(KEYS.worker_steps(worker.worker_id))) == {"advance:r2:1"}


async def test_a_sweep_that_recorded_its_polls_leaves_no_claims_behind(
    redis: aioredis.Redis,
) -> None:
    """Claims end when the sweep is recorded: a later lapse releases nothing of them."""
    worker = liveness(redis, "sweeper")
    await redis.zadd(KEYS.polls, {"parked": now_ms() - 1})
    claimed = await worker.ledger.claim_polls(10, 300, owner=worker.worker_id)
    async with redis.pipeline(transaction=False) as pipe:
        worker.ledger.settle_claims(pipe, worker.worker_id, claimed)
        await pipe.execute()
    assert not await redis.exists(KEYS.worker_claims(worker.worker_id))
