"""Scoring slots on a real Redis: a cap per predictive web service, kept by renewal, given
back idempotently, and a lapsed lease taken back only while the cap has room."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from worker.keys import Keys
from worker.run.scoring_slots import ScoringSlots
from worker.run.slots import Hold


async def test_the_cap_holds_per_service_and_a_released_slot_is_taken_again(
    redis: aioredis.Redis,
) -> None:
    """Two slots on svc-a (its own cap), the third run waits; svc-b is apart; release frees."""
    slots = ScoringSlots(redis, Keys("t"), cap=5, caps={"svc-a": 2})
    assert [await slots.hold("svc-a", run) for run in ("r1", "r2")] == [Hold.RETAKEN] * 2
    assert await slots.hold("svc-a", "r3") is Hold.LOST
    assert await slots.hold("svc-b", "r3") is Hold.RETAKEN
    assert await slots.hold("svc-a", "r1") is Hold.RENEWED
    assert await slots.release("svc-a", "r1")
    assert not await slots.release("svc-a", "r1")
    assert await slots.hold("svc-a", "r3") is Hold.RETAKEN
    assert await slots.in_use("svc-a") == 2


async def test_a_lapsed_lease_frees_its_slot_for_another_run(redis: aioredis.Redis) -> None:
    """A run that stopped advancing (a dead worker) holds its slot only until its lease ends."""
    slots = ScoringSlots(redis, Keys("t"), cap=1, lease_seconds=0.2)
    assert await slots.hold("svc", "gone") is Hold.RETAKEN
    assert await slots.hold("svc", "next") is Hold.LOST
    await asyncio.sleep(0.3)
    assert await slots.in_use("svc") == 0
    assert await slots.hold("svc", "next") is Hold.RETAKEN
    assert await slots.hold("svc", "gone") is Hold.LOST
