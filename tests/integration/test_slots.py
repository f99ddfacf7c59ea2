"""BES slots in a real Redis: caps per service and endpoint, lanes, leases."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis
from pydantic import SecretStr

from worker.keys import Keys
from worker.run.ledger import Ledger
from worker.run.scripts import now_ms
from worker.run.slots import Hold, Slots
from worker.schemas import Lane
from worker.settings import BesEndpointConfig, TrainingServiceConfig


def service(endpoints: int, per_endpoint: int, cap: int, reserve: int = 0) -> TrainingServiceConfig:
    """A training service config with ``endpoints`` BES endpoints and an interactive reserve
    of ``reserve`` (none unless asked: these tests count the caps and lanes alone)."""
    return TrainingServiceConfig(
        endpoints=[
            BesEndpointConfig(
                url=f"http://e{i}", api_key=SecretStr("k"), max_concurrent_jobs=per_endpoint
            )
            for i in range(endpoints)
        ],
        max_running=cap,
        interactive_reserve=reserve,
    )


def make_slots(
    redis: aioredis.Redis,
    services: dict[str, TrainingServiceConfig],
    *,
    lease_seconds: float = 120,
    bulk_every: int = 5,
) -> Slots:
    """Slots of ``services`` under the test prefix, granting through a ledger."""
    keys = Keys("t")
    return Slots(redis, keys, Ledger(redis, keys), services, lease_seconds, bulk_every)


async def in_use(slots: Slots, service: str) -> int:
    """Slots of ``service`` whose lease has not run out."""
    return int(await slots.redis.zcount(slots.keys.slots(service), f"({now_ms()}", "+inf"))


async def wait(slots: Slots, lane: Lane, run_ids: list[str]) -> None:
    """Queue runs in a lane, in order."""
    for run_id in run_ids:
        await slots.ledger.ensure_waiting("svc", lane, run_id)
        await asyncio.sleep(0.002)  # distinct scores keep the order


async def test_never_more_grants_than_the_service_cap(redis: aioredis.Redis) -> None:
    """With a cap of 5, 30 waiting runs get exactly 5 slots until one is released."""
    slots = make_slots(redis, {"svc": service(2, 40, 5)})
    await wait(slots, Lane.BULK, [f"r{i}" for i in range(30)])
    granted = await slots.dispatch("svc")
    assert len(granted) == 5
    assert await slots.dispatch("svc") == []
    await slots.release("svc", granted[0].run_id)
    again = await slots.dispatch("svc")
    assert len(again) == 1
    assert await in_use(slots, "svc") == 5


async def test_grants_are_spread_over_endpoints_within_their_cap(redis: aioredis.Redis) -> None:
    """Three endpoints of 2 jobs each take 6 runs, 2 per endpoint."""
    slots = make_slots(redis, {"svc": service(3, 2, 100)})
    await wait(slots, Lane.BULK, [f"r{i}" for i in range(10)])
    granted = await slots.dispatch("svc")
    per_endpoint = [sum(1 for g in granted if g.endpoint == i) for i in range(3)]
    assert per_endpoint == [2, 2, 2]


async def test_each_endpoint_keeps_its_own_cap(redis: aioredis.Redis) -> None:
    """Endpoints of 4, 1 and 2 jobs take 4, 1 and 2 runs: no endpoint is held to another's."""
    config = service(3, 4, 100)
    for endpoint, cap in zip(config.endpoints, (4, 1, 2), strict=True):
        endpoint.max_concurrent_jobs = cap
    slots = make_slots(redis, {"svc": config})
    await wait(slots, Lane.BULK, [f"r{i}" for i in range(10)])
    granted = await slots.dispatch("svc")
    per_endpoint = [sum(1 for g in granted if g.endpoint == i) for i in range(3)]
    assert per_endpoint == [4, 1, 2]


async def test_interactive_runs_go_first_but_bulk_is_not_starved(redis: aioredis.Redis) -> None:
    """Interactive runs waiting behind bulk ones are granted first; every 5th grant is bulk."""
    slots = make_slots(redis, {"svc": service(1, 100, 10)}, bulk_every=5)
    await wait(slots, Lane.BULK, [f"bulk{i}" for i in range(20)])
    await wait(slots, Lane.INTERACTIVE, [f"int{i}" for i in range(20)])
    granted = [g.run_id for g in await slots.dispatch("svc")]
    assert granted[:4] == ["int0", "int1", "int2", "int3"]
    assert granted[4] == "bulk0"
    assert sum(1 for r in granted if r.startswith("bulk")) == 2


async def test_an_expired_lease_frees_its_slot(redis: aioredis.Redis) -> None:
    """A run that stops renewing loses its slot to the next waiting run."""
    slots = make_slots(redis, {"svc": service(1, 1, 1)}, lease_seconds=0.05)  # fast test
    await wait(slots, Lane.BULK, ["a", "b"])
    assert [g.run_id for g in await slots.dispatch("svc")] == ["a"]
    await asyncio.sleep(0.1)
    assert [g.run_id for g in await slots.dispatch("svc")] == ["b"]
    assert await slots.held_endpoint("svc", "a") is None


@pytest.mark.parametrize("seconds", [0.2])
async def test_throttle_pauses_dispatch(redis: aioredis.Redis, seconds: float) -> None:
    """After a 429/503 the service grants nothing until the pause ends."""
    slots = make_slots(redis, {"svc": service(1, 10, 10)})
    await wait(slots, Lane.BULK, ["a"])
    await slots.throttle("svc", seconds)
    assert await slots.dispatch("svc") == []
    await asyncio.sleep(seconds + 0.05)
    assert [g.run_id for g in await slots.dispatch("svc")] == ["a"]


async def test_the_interactive_reserve_is_kept_free_of_bulk_runs(redis: aioredis.Redis) -> None:
    """With 2 of 5 slots reserved, bulk takes 3; an interactive run still gets one at once."""
    slots = make_slots(redis, {"svc": service(1, 100, 5, reserve=2)})
    await wait(slots, Lane.BULK, [f"bulk{i}" for i in range(10)])
    assert len(await slots.dispatch("svc")) == 3
    await wait(slots, Lane.INTERACTIVE, ["urgent1", "urgent2", "urgent3"])
    assert [g.run_id for g in await slots.dispatch("svc")] == ["urgent1", "urgent2"]
    assert await in_use(slots, "svc") == 5


async def test_a_running_job_takes_its_slot_back_when_the_caps_have_room(
    redis: aioredis.Redis,
) -> None:
    """hold() renews a held slot; after its lease ran out it takes the slot back when the
    caps still have room, so the running job counts against them again."""
    slots = make_slots(redis, {"svc": service(1, 2, 2)}, lease_seconds=0.05)
    await wait(slots, Lane.BULK, ["a"])
    assert [g.run_id for g in await slots.dispatch("svc")] == ["a"]
    assert await slots.hold("svc", "a", 0) is Hold.RENEWED
    await asyncio.sleep(0.1)
    assert await in_use(slots, "svc") == 0  # a's lease ran out
    slots.lease_seconds = 10
    assert await slots.hold("svc", "a", 0) is Hold.RETAKEN
    assert await slots.held_endpoint("svc", "a") == 0
    assert await in_use(slots, "svc") == 1


async def test_a_lost_slot_is_not_taken_back_above_the_caps(redis: aioredis.Redis) -> None:
    """After a's lease ran out and its slot went to b (cap 1), holding a reports it lost
    and leaves b's slot alone: the caps are never exceeded."""
    slots = make_slots(redis, {"svc": service(1, 1, 1)}, lease_seconds=0.05)
    await wait(slots, Lane.BULK, ["a", "b", "c"])
    assert [g.run_id for g in await slots.dispatch("svc")] == ["a"]
    await asyncio.sleep(0.1)
    slots.lease_seconds = 10
    assert [g.run_id for g in await slots.dispatch("svc")] == ["b"]  # a's lease ran out
    assert await slots.hold("svc", "a", 0) is Hold.LOST
    assert await slots.held_endpoint("svc", "a") is None
    assert await slots.held_endpoint("svc", "b") == 0
    assert await in_use(slots, "svc") == 1
    assert await slots.dispatch("svc") == []
