"""The archiver's lease over a long walk, against real Redis and Azurite.

A pass renews its lease at every chunk of tenants. The walk is made long by a hook the
archiver calls between chunks; the tests decide from what Redis holds at each boundary (the
lease's holder and its remaining TTL), not from how long anything took.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from pydantic import SecretStr

from tests.integration.test_archive import LATER, finished_runs, new_tenant
from worker.archive import ArchivePass, Archiver
from worker.archive_parts import PartName, decode_part
from worker.blobs import BlobStore
from worker.keys import Keys
from worker.run.model import Run
from worker.schemas import utcnow
from worker.settings import ArchiveConfig
from worker.store import Store

OWNER = "lease-worker"
TENANTS = 6
CHUNK = 2  # three chunks of tenants, then the offboarded ones: boundaries 1, 2 and 3


@pytest.fixture
async def blobs(blob_connection_string: str) -> AsyncIterator[BlobStore]:
    async with BlobStore(SecretStr(blob_connection_string), "archive-lease") as store:
        await store.ensure_container()
        yield store


def config(lease_seconds: float) -> ArchiveConfig:
    """Keep one run per tenant; a lease below the settings' floor (tests only)."""
    valid = ArchiveConfig.model_validate({"keep_runs": 1, "min_part_runs": 1})
    return valid.model_copy(update={"lease_seconds": lease_seconds})


async def fleet(store: Store) -> dict[str, list[Run]]:
    """``TENANTS`` tenants of two finished runs each; the older one is past retention."""
    runs = {}
    for i in range(TENANTS):
        tenant_id = f"ten{i}"
        await new_tenant(store, tenant_id)
        runs[tenant_id] = await finished_runs(store, tenant_id, 2)
    return runs


async def archived_ids(blobs: BlobStore, reports: list[ArchivePass]) -> Counter[str]:
    """How many parts hold each run id, over the parts the passes wrote."""
    held: Counter[str] = Counter()
    for report in reports:
        for part in report.parts:
            held.update(run.id for run in decode_part(await blobs.download(part)))
    return held


async def test_a_walk_longer_than_the_lease_renews_it_and_completes(
    redis: aioredis.Redis, blobs: BlobStore
) -> None:
    """With a 1.5 s lease and 0.6 s between chunks, the original TTL lapses mid-walk; the
    pass holds the lease at every boundary (renewed: its TTL is still running and it is
    still ours) and archives every tenant's old run."""
    store = Store(redis, Keys("lease1"))
    keys = Keys("lease1")
    runs = await fleet(store)
    seen: list[tuple[float, str | None, int]] = []

    async def between_chunks(_index: int) -> None:
        await asyncio.sleep(0.6)
        holder = await redis.get(keys.archive_lease)
        seen.append((time.monotonic(), holder, int(await redis.pttl(keys.archive_lease))))

    archiver = Archiver(store, blobs, config(1.5), OWNER, chunk=CHUNK, on_chunk=between_chunks)
    started = time.monotonic()
    report = await archiver.archive_once(utcnow() + LATER)
    assert len(seen) == 3
    assert seen[-1][0] - started > 1.5  # the walk outlasted the lease's first TTL ...
    assert all(holder == OWNER and ttl > 0 for _, holder, ttl in seen)  # ... and kept it
    assert not report.lease_lost
    assert report.archived == TENANTS
    held = await archived_ids(blobs, [report])
    assert set(held) == {tenant_runs[0].id for tenant_runs in runs.values()}
    assert set(held.values()) == {1}
    assert await redis.get(keys.archive_lease) is None  # given back at the end


async def test_a_lease_taken_mid_walk_stops_at_a_chunk_and_the_next_pass_ends_it(
    redis: aioredis.Redis, blobs: BlobStore
) -> None:
    """Another worker takes the lease after the second chunk: the pass stops there (two
    chunks archived, no intent left, the other worker's lease untouched); once that lease
    is given back, the next pass archives the rest, each run in exactly one part."""
    store = Store(redis, Keys("lease2"))
    keys = Keys("lease2")
    runs = await fleet(store)

    async def steal(index: int) -> None:
        if index == 2:
            await redis.set(keys.archive_lease, "other-worker", px=60_000)

    now = utcnow() + LATER
    first = await Archiver(
        store, blobs, config(30), OWNER, chunk=CHUNK, on_chunk=steal
    ).archive_once(now)
    assert first.lease_lost
    assert first.archived == 2 * CHUNK
    assert await store.ledger.archive_intents() == {}
    assert await redis.get(keys.archive_lease) == "other-worker"
    old = {tenant_id: tenant_runs[0] for tenant_id, tenant_runs in runs.items()}
    left = [tenant_id for tenant_id, run in old.items() if await store.get_run(run.id)]
    assert left == [f"ten{i}" for i in range(2 * CHUNK, TENANTS)]

    blocked = await Archiver(store, blobs, config(30), OWNER, chunk=CHUNK).archive_once(now)
    assert not blocked.held
    await redis.delete(keys.archive_lease)  # the other worker's pass ends
    second = await Archiver(store, blobs, config(30), OWNER, chunk=CHUNK).archive_once(now)
    assert not second.lease_lost
    assert second.archived == TENANTS - 2 * CHUNK
    held = await archived_ids(blobs, [first, second])
    assert set(held) == {run.id for run in old.values()}
    assert set(held.values()) == {1}
    for run in old.values():
        assert await store.get_run(run.id) is None
        where = await store.ledger.archived_at(run.id)
        assert where is not None
        assert PartName.parse(where).tenant_id == run.tenant_id
    for tenant_runs in runs.values():
        assert await store.get_run(tenant_runs[1].id) is not None  # the newest run stays


async def test_a_renewal_never_takes_a_lapsed_lease_back(redis: aioredis.Redis) -> None:
    """Renewing extends the owner's lease only: a lapsed or taken lease stays as it is."""
    ledger = Store(redis, Keys("lease3")).ledger
    lease = Keys("lease3").archive_lease
    assert await ledger.hold_archive_lease(OWNER, 60_000)
    assert await ledger.renew_archive_lease(OWNER, 90_000)
    assert int(await redis.pttl(lease)) > 60_000
    await redis.delete(lease)  # its TTL ran out
    assert not await ledger.renew_archive_lease(OWNER, 60_000)
    assert await redis.get(lease) is None
    await redis.set(lease, "other-worker")
    assert not await ledger.renew_archive_lease(OWNER, 60_000)
    assert await redis.get(lease) == "other-worker"
