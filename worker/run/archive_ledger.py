"""The archive's writes of batch records and model histories (beside the ledger's runs).

Like the ledger's run removal, each script runs under the archiver's lease, clears the
part's intent in the same call and is flagged ``allow-oom`` (it frees memory).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import redis.asyncio as aioredis

from worker.keys import Keys
from worker.redisio import reply
from worker.run.scripts import oom_safe_script


class ArchiveLedger:
    """Removal of archived batches and trimmed model-history entries, and their index."""

    def __init__(self, redis: aioredis.Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys
        self._batches = redis.register_script(oom_safe_script("archive_batches"))
        self._models = redis.register_script(oom_safe_script("archive_models"))
        self._tenant = redis.register_script(oom_safe_script("archive_tenant"))

    async def remove_batches(
        self, owner: str, part: str, where: str, batch_ids: Sequence[str]
    ) -> int:
        """Remove the batches (summarised in ``part``), index them to ``where``, clear the
        intent: the batches removed, or -1 when the lease was lost."""
        keys = [
            self.keys.archive_lease,
            self.keys.archive_intents,
            self.keys.archived_batches,
            self.keys.batches,
        ]
        for batch_id in batch_ids:
            keys += [self.keys.batch(batch_id), self.keys.batch_runs(batch_id)]
        args = [owner, part, where, *batch_ids]
        return int(await self._batches(keys=keys, args=args))

    async def trim_models(
        self, owner: str, part: str, tenant_id: str, entries: Sequence[str]
    ) -> int:
        """Drop ``entries`` (JSON, list order) from the tail of the tenant's model history if
        they are still its tail, and clear the intent: entries removed, or -1 (lease lost)."""
        keys = [
            self.keys.archive_lease,
            self.keys.archive_intents,
            self.keys.tenant_models(tenant_id),
        ]
        return int(await self._models(keys=keys, args=[owner, part, *entries]))

    async def remove_tenant(self, owner: str, part: str, tenant_id: str) -> int:
        """Replace an offboarded tenant's record (archived in ``part``) by a tombstone naming
        the part: 1 removed, 0 when it still holds runs or history, -1 (lease lost)."""
        keys = [
            self.keys.archive_lease,
            self.keys.archive_intents,
            self.keys.tenant(tenant_id),
            self.keys.tenant_runs(tenant_id),
            self.keys.tenant_models(tenant_id),
            self.keys.tenant_verification(tenant_id),
            self.keys.offboarded,
        ]
        return int(await self._tenant(keys=keys, args=[owner, part, tenant_id]))

    async def holds_records(self, tenant_id: str) -> bool:
        """Whether runs or model history of the tenant are still in Redis."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zcard(self.keys.tenant_runs(tenant_id))
            pipe.llen(self.keys.tenant_models(tenant_id))
            runs, models = await pipe.execute()
        return bool(runs or models)

    async def offboarded_before(self, before: float, limit: int) -> list[str]:
        """Tenants offboarded before ``before`` (s since epoch), the earliest first."""
        ids: list[str] = await self.redis.zrangebyscore(
            self.keys.offboarded, "-inf", f"({before}", start=0, num=limit
        )
        return ids

    async def model_tail(self, tenant_id: str, count: int) -> list[str]:
        """The oldest ``count`` entries of the tenant's model history (JSON, list order)."""
        entries: list[str] = await reply(
            self.redis.lrange(self.keys.tenant_models(tenant_id), -count, -1)
        )
        return entries

    async def history_length(self, tenant_id: str) -> int:
        """How many entries the tenant's model history holds."""
        return int(await reply(self.redis.llen(self.keys.tenant_models(tenant_id))))

    async def history_lengths(self, tenant_ids: Sequence[str]) -> list[int]:
        """How many entries each tenant's model history holds (one pipelined round trip)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for tenant_id in tenant_ids:
                pipe.llen(self.keys.tenant_models(tenant_id))
            return [int(n) for n in await pipe.execute()]

    async def archived_batch_at(self, batch_id: str) -> str | None:
        """Where an archived batch's summary is (``{yyyy-mm}/{pass}``), or None."""
        value = await reply(self.redis.hget(self.keys.archived_batches, batch_id))
        return None if value is None else str(value)

    async def old_batch_ids(self, created_before: float, limit: int) -> list[str]:
        """Batch ids created before ``created_before`` (s since epoch), oldest first."""
        ids: list[str] = await self.redis.zrangebyscore(
            self.keys.batches, "-inf", created_before, start=0, num=limit
        )
        return ids

    async def tenant_run_ids_below(
        self, tenant_id: str, max_ms: int | None, limit: int
    ) -> list[str]:
        """The tenant's live run ids created at or before ``max_ms`` (all: None), newest
        first, at most ``limit``."""
        high: int | str = "+inf" if max_ms is None else max_ms
        ids: list[str] = await self.redis.zrevrangebyscore(
            self.keys.tenant_runs(tenant_id), high, "-inf", start=0, num=limit
        )
        return ids

    async def erase_runs(self, tenant_id: str) -> int:
        """Delete every run of the tenant still in Redis, with its entries in the due and
        polls sets and in its batch's run list, and the tenant's run set: runs deleted."""
        run_set = self.keys.tenant_runs(tenant_id)
        ids: list[str] = await reply(self.redis.zrange(run_set, 0, -1))
        deleted = 0
        for start in range(0, len(ids), ERASE_CHUNK):
            chunk = ids[start : start + ERASE_CHUNK]
            async with self.redis.pipeline(transaction=False) as pipe:
                for run_id in chunk:
                    pipe.hget(self.keys.run(run_id), "doc")
                docs = await pipe.execute()
            async with self.redis.pipeline(transaction=True) as pipe:
                for run_id, doc in zip(chunk, docs, strict=True):
                    pipe.delete(self.keys.run(run_id))
                    pipe.zrem(self.keys.due, run_id)
                    pipe.zrem(self.keys.polls, run_id)
                    batch_id = _batch_of(doc)
                    if batch_id:
                        pipe.lrem(self.keys.batch_runs(batch_id), 1, run_id)
                replies = await pipe.execute()
            deleted += sum(1 for i in range(0, len(replies), 3) if replies[i] == 1)
        await reply(self.redis.delete(run_set))
        return deleted

    async def erase_archive_index(self, tenant_id: str, run_ids: Sequence[str]) -> int:
        """Forget the tenant's archived runs (``run_ids``, read from its parts) and its parts
        in the index: run entries removed. Entries of the old per-run hash go too."""
        mark = f"{tenant_id}/"
        numbers = {
            str(number)
            async for number, where in self.redis.hscan_iter(self.keys.archive_parts, count=1000)
            if str(where).startswith(mark)
        }
        removed = 0
        for run_id in run_ids:
            bucket, field = self.keys.archive_index(run_id)
            value = await reply(self.redis.hget(bucket, field))
            if value is None:
                continue
            kept = [n for n in str(value).split(",") if n not in numbers]
            if kept:
                await reply(self.redis.hset(bucket, field, ",".join(kept)))
            else:
                await reply(self.redis.hdel(bucket, field))
            removed += 1
        if numbers:
            await reply(self.redis.hdel(self.keys.archive_parts, *numbers))
        async for run_id, where in self.redis.hscan_iter(self.keys.archived, count=1000):
            if str(where).startswith(mark):
                removed += int(await reply(self.redis.hdel(self.keys.archived, run_id)))
        return removed

    async def erase_intents(self, tenant_id: str) -> int:
        """Drop archive intents a killed pass left for the tenant: intents dropped."""
        intents: dict[str, str] = await reply(self.redis.hgetall(self.keys.archive_intents))
        mine = [
            part for part, raw in intents.items() if json.loads(raw).get("tenant_id") == tenant_id
        ]
        if not mine:
            return 0
        return int(await reply(self.redis.hdel(self.keys.archive_intents, *mine)))

    async def erase_tenant_keys(self, tenant_id: str, schedule_name: str) -> int:
        """Delete the tenant's record, model history, preflight record, deploy lock and its
        entries in the tenant indices and schedules: keys and entries removed."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(
                self.keys.tenant(tenant_id),
                self.keys.tenant_models(tenant_id),
                self.keys.tenant_verification(tenant_id),
                self.keys.deploy_lock(tenant_id),
                self.keys.schedule(schedule_name),
            )
            pipe.zrem(self.keys.tenants, tenant_id)
            pipe.zrem(self.keys.offboarded, tenant_id)
            pipe.zrem(self.keys.schedules, schedule_name)
            pipe.hdel(self.keys.schedules_pending, schedule_name)
            replies = await pipe.execute()
        return sum(int(value) for value in replies)


ERASE_CHUNK = 500


def _batch_of(doc: str | None) -> str | None:
    """The batch id of a run document, if it has one."""
    if doc is None:
        return None
    batch_id = json.loads(doc).get("batch_id")
    return str(batch_id) if batch_id else None


def _tenant_of(intent: str) -> str | None:
    """The tenant an archive intent (JSON) names, if any."""
    tenant_id = json.loads(intent).get("tenant_id")
    return str(tenant_id) if tenant_id else None
