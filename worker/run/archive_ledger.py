"""The archive's writes of batch records and model histories (beside the ledger's runs).

Like the ledger's run removal, each script runs under the archiver's lease, clears the
part's intent in the same call and is flagged ``allow-oom`` (it frees memory).
"""

from __future__ import annotations

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

    async def model_tail(self, tenant_id: str, count: int) -> list[str]:
        """The oldest ``count`` entries of the tenant's model history (JSON, list order)."""
        entries: list[str] = await reply(
            self.redis.lrange(self.keys.tenant_models(tenant_id), -count, -1)
        )
        return entries

    async def history_length(self, tenant_id: str) -> int:
        """How many entries the tenant's model history holds."""
        return int(await reply(self.redis.llen(self.keys.tenant_models(tenant_id))))

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
