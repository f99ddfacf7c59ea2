"""The compact id -> part index of archived runs, against a real Redis."""

from __future__ import annotations

import uuid

import redis.asyncio as aioredis

from tests.unit.test_archive import run
from worker.keys import Keys
from worker.redisio import reply
from worker.store import Store

OWNER = "index-test"


async def archive(store: Store, where: str, run_ids: list[str]) -> int:
    """Put these runs in Redis and remove them as archived into the part named ``where``."""
    for run_id in run_ids:
        await reply(store.redis.hset(store.keys.run(run_id), "doc", run(run_id).model_dump_json()))
    await store.redis.set(store.keys.archive_lease, OWNER)
    runs = [run(run_id) for run_id in run_ids]
    part = f"archive/runs/{where}.jsonl.gz"
    return await store.ledger.remove_archived(OWNER, part, where, "acme", runs)


async def test_each_part_is_named_once_and_a_run_costs_a_few_bytes_of_its_bucket(
    redis: aioredis.Redis,
) -> None:
    """100 runs in 10 parts: 10 names; runs sharing a bucket (as every bucket fills at fleet
    scale: 65,536 buckets, about 56 runs each per year of 10,000 nightly tenants) cost it
    under 24 bytes each."""
    store = Store(redis, Keys("idx1"))
    ids = ["beef" + uuid.uuid4().hex[4:] for _ in range(100)]
    for part in range(10):
        chunk = ids[part * 10 : (part + 1) * 10]
        assert await archive(store, f"acme/2026-01/p{part:02d}", chunk) == 10
    assert await reply(redis.hlen(store.keys.archive_parts)) == 10
    for index in (0, 55, 99):
        assert await store.ledger.archived_at(ids[index]) == f"acme/2026-01/p{index // 10:02d}"
    bucket, _ = store.keys.archive_index(ids[0])
    full_bucket = await reply(redis.memory_usage(bucket, samples=0)) or 0
    await redis.delete(bucket)
    await reply(redis.hset(bucket, "x", "1"))
    one_entry = await reply(redis.memory_usage(bucket, samples=0)) or 0
    assert (full_bucket - one_entry) / 99 < 24, (full_bucket, one_entry)
    assert await store.ledger.archived_at(uuid.uuid4().hex) is None


async def test_two_ids_sharing_an_index_field_keep_both_parts(redis: aioredis.Redis) -> None:
    """Ids equal in their first 14 hex digits: the field names both parts; the reader is
    handed both names and ``archived_at`` (one part for certain) none."""
    store = Store(redis, Keys("idx2"))
    shared = uuid.uuid4().hex[:14]
    first, second = shared + "a" * 18, shared + "b" * 18
    await archive(store, "acme/2026-01/one", [first])
    await archive(store, "acme/2026-02/two", [second])
    both = ["acme/2026-01/one", "acme/2026-02/two"]
    assert await store.ledger.archived_candidates(first) == both
    assert await store.ledger.archived_candidates(second) == both
    assert await store.ledger.archived_at(first) is None


async def test_runs_of_the_old_per_run_hash_are_still_found(redis: aioredis.Redis) -> None:
    """An entry written before the compact index (``archived`` hash) still names its part."""
    store = Store(redis, Keys("idx3"))
    run_id = uuid.uuid4().hex
    await reply(redis.hset(store.keys.archived, run_id, "acme/2025-12/old"))
    assert await store.ledger.archived_at(run_id) == "acme/2025-12/old"
