"""Whether a tenant's target passed the onboarding preflight (or was onboarded unverified)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import redis.asyncio as aioredis

from worker.keys import Keys
from worker.redisio import reply


@dataclass(frozen=True)
class Verification:
    """The preflight's outcome: ``verified`` false when it was skipped (``verify=false``)."""

    verified: bool
    checks: tuple[str, ...] = ()


class Verifications:
    """Preflight outcomes of tenants, one small record each beside the tenant's own."""

    def __init__(self, redis: aioredis.Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys

    async def record(self, tenant_id: str, outcome: Verification) -> None:
        """Record the outcome of the latest preflight (or of skipping it)."""
        value = json.dumps({"verified": outcome.verified, "checks": list(outcome.checks)})
        await reply(self.redis.set(self.keys.tenant_verification(tenant_id), value))

    async def get_many(self, tenant_ids: Sequence[str]) -> dict[str, Verification]:
        """The recorded outcomes of these tenants (tenants without one are left out)."""
        if not tenant_ids:
            return {}
        names = [self.keys.tenant_verification(t) for t in tenant_ids]
        raws = await reply(self.redis.mget(names))
        found = {}
        for tenant_id, raw in zip(tenant_ids, raws, strict=True):
            if raw is not None:
                doc = json.loads(raw)
                found[tenant_id] = Verification(bool(doc["verified"]), tuple(doc["checks"]))
        return found
