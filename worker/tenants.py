"""Redis records of tenants: onboarding, compare-and-set updates, deployments, API keys."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import redis.asyncio as aioredis

from worker import lua
from worker.keys import TENANT_RUNS_SUFFIX, Keys
from worker.redisio import reply
from worker.schemas import DeployedModel, Tenant, V2PoolTarget, utcnow


class StoreError(Exception):
    """Base of the store's errors."""


class StaleRecord(StoreError):
    """A compare-and-set lost: someone else changed the record first."""


class TenantNotFound(StoreError):
    """No tenant with this id."""


class TenantExists(StoreError):
    """A tenant with this id exists already."""


class PoolFull(StoreError):
    """The v2 serving pool a new tenant was to join has no room left."""


@dataclass(frozen=True)
class TenantBrief:
    """What the fleet view counts of one tenant."""

    kind: str
    deployed: bool
    latest_state: str | None  # of the tenant's latest run, None without one (or expired)


@dataclass(frozen=True)
class FleetPage:
    """A page of tenants as the fleet view counts them, and their recent runs."""

    tenants: list[TenantBrief]
    recent: list[tuple[str, int]]  # (state, created ms) of runs created since the cut-off


class TenantRecords:
    """Tenant records; ``Store`` adds runs and batches on top."""

    def __init__(self, redis: aioredis.Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys
        self._save_doc = redis.register_script(lua.SAVE_DOC)
        self._create_doc = redis.register_script(lua.CREATE_DOC)
        self._save_and_push = redis.register_script(lua.SAVE_DOC_AND_PUSH)
        self._fleet_page = redis.register_script(lua.FLEET_PAGE)
        self._create_pooled = redis.register_script(lua.CREATE_POOLED_DOC)
        self._save_leaving_pool = redis.register_script(lua.SAVE_DOC_LEAVING_POOL)

    async def create_tenant(self, tenant: Tenant, *, pool_capacity: int | None = None) -> None:
        """Store a new tenant; raises ``TenantExists`` if the id is taken.

        A tenant of a v2 serving pool joins its pool's tenant count in the same write, only
        while the pool holds fewer than ``pool_capacity`` (``PoolFull`` otherwise).
        """
        if isinstance(tenant.target, V2PoolTarget):
            await self._create_pooled_tenant(tenant, tenant.target, pool_capacity)
            return
        created = await self._create_doc(
            keys=[self.keys.tenant(tenant.id), self.keys.tenants],
            args=[tenant.model_dump_json(), tenant.id, tenant.created_at.timestamp()],
        )
        if not created:
            raise TenantExists(tenant.id)

    async def _create_pooled_tenant(
        self, tenant: Tenant, target: V2PoolTarget, capacity: int | None
    ) -> None:
        if target.pool is None:
            raise ValueError("a tenant is stored with the pool it was assigned")
        created = await self._create_pooled(
            keys=[self.keys.tenant(tenant.id), self.keys.tenants, self.keys.v2_pool_tenants],
            args=[
                tenant.model_dump_json(),
                tenant.id,
                tenant.created_at.timestamp(),
                target.pool,
                capacity if capacity is not None else 2**53,
            ],
        )
        if created == 0:
            raise TenantExists(tenant.id)
        if created == -1:
            raise PoolFull(target.pool)

    async def pool_tenants(self) -> dict[str, int]:
        """Onboarded tenants per v2 serving pool."""
        counts = await reply(self.redis.hgetall(self.keys.v2_pool_tenants))
        return {str(pool): int(count) for pool, count in counts.items()}

    async def get_tenant(self, tenant_id: str) -> Tenant | None:
        """The tenant, or None."""
        doc = await reply(self.redis.hget(self.keys.tenant(tenant_id), "doc"))
        return None if doc is None else Tenant.model_validate_json(doc)

    async def _tenant_with_version(self, tenant_id: str) -> tuple[Tenant, str]:
        doc, version = await reply(
            self.redis.hmget(self.keys.tenant(tenant_id), ["doc", "version"])
        )
        if doc is None:
            raise TenantNotFound(tenant_id)
        return Tenant.model_validate_json(doc), str(version)

    async def update_tenant(
        self, tenant_id: str, change: Callable[[Tenant], Tenant | None], attempts: int = 20
    ) -> Tenant:
        """Apply ``change`` with compare-and-set, retrying on conflict.

        ``change`` returns the new tenant, or None to leave it as it is.
        """
        for _ in range(attempts):
            tenant, version = await self._tenant_with_version(tenant_id)
            updated = change(tenant.model_copy(deep=True))
            if updated is None:
                return tenant
            saved = await self._save_doc(
                keys=[self.keys.tenant(tenant_id)], args=[version, updated.model_dump_json()]
            )
            if saved:
                return updated
        raise StaleRecord(f"tenant {tenant_id} kept changing")

    async def list_tenant_ids(self, offset: int = 0, limit: int = 100) -> list[str]:
        """Tenant ids by creation time."""
        ids: list[str] = await self.redis.zrange(self.keys.tenants, offset, offset + limit - 1)
        return ids

    async def count_tenants(self) -> int:
        """Number of tenants."""
        return int(await self.redis.zcard(self.keys.tenants))

    async def get_tenants(self, tenant_ids: Sequence[str]) -> list[Tenant]:
        """The tenants with these ids that exist, in order (one pipelined round trip)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for tenant_id in tenant_ids:
                pipe.hget(self.keys.tenant(tenant_id), "doc")
            docs = await pipe.execute()
        return [Tenant.model_validate_json(doc) for doc in docs if doc is not None]

    async def fleet_page(self, offset: int, count: int, since_ms: int) -> FleetPage:
        """Tenants ``offset`` to ``offset + count`` by creation time (offboarded ones left out),
        read inside Redis in one call, with their runs created since ``since_ms``."""
        args: list[str | int] = [
            offset,
            count,
            since_ms,
            self.keys.tenant_prefix(),
            self.keys.run_prefix(),
            TENANT_RUNS_SUFFIX,
        ]
        flat, recent = await self._fleet_page(keys=[self.keys.tenants], args=args)
        tenants = [
            TenantBrief(kind, deployed == "1", state or None)
            for kind, deployed, state in zip(flat[0::3], flat[1::3], flat[2::3], strict=True)
        ]
        pairs = zip(recent[0::2], recent[1::2], strict=True)
        runs = [(state, int(float(created))) for state, created in pairs]
        return FleetPage(tenants, runs)

    async def record_deployment(
        self, tenant_id: str, model: DeployedModel, attempts: int = 20
    ) -> bool:
        """Make ``model`` the tenant's deployed model if it is newer than the current one, and
        add it to the model history in the same write."""
        entry = model.model_dump_json()
        for _ in range(attempts):
            tenant, version = await self._tenant_with_version(tenant_id)
            if tenant.deployed is not None and tenant.deployed.seq >= model.seq:
                return tenant.deployed.run_id == model.run_id
            updated = tenant.model_copy(update={"deployed": model})
            saved = await self._save_and_push(
                keys=[self.keys.tenant(tenant_id), self.keys.tenant_models(tenant_id)],
                args=[version, updated.model_dump_json(), entry],
            )
            if saved:
                return True
        raise StaleRecord(f"tenant {tenant_id} kept changing")

    async def model_history(self, tenant_id: str, limit: int = 100) -> list[DeployedModel]:
        """Models deployed to a tenant, newest first."""
        docs = await reply(self.redis.lrange(self.keys.tenant_models(tenant_id), 0, limit - 1))
        return [DeployedModel.model_validate_json(doc) for doc in docs]

    async def register_api_key(self, key_hash: str, tenant_id: str) -> bool:
        """Map a hashed tenant API key to its tenant; False if that hash is taken."""
        return bool(await self.redis.set(self.keys.api_key(key_hash), tenant_id, nx=True))

    async def tenant_for_api_key(self, key_hash: str) -> str | None:
        """The tenant a hashed API key belongs to, or None."""
        tenant_id: str | None = await self.redis.get(self.keys.api_key(key_hash))
        return tenant_id

    async def drop_api_keys(self, key_hashes: Sequence[str]) -> None:
        """Forget hashed API keys (they stop authenticating at once)."""
        if key_hashes:
            await self.redis.delete(*(self.keys.api_key(h) for h in key_hashes))

    async def active_run_id(self, tenant_id: str) -> str | None:
        """The id of the tenant's most recent active run, if any (it may have just ended)."""
        run_id: str | None = await reply(self.redis.hget(self.keys.tenant(tenant_id), "active_run"))
        return run_id

    async def next_data_version(self, tenant_id: str) -> int:
        """Allocate the tenant's next training-data version number (1, 2, ...)."""
        return int(await reply(self.redis.hincrby(self.keys.tenant(tenant_id), "data_seq", 1)))

    async def offboard_tenant(self, tenant_id: str, *, remove_remote: bool = False) -> Tenant:
        """Mark a tenant deleted, revoke its API keys and take it off the tenant index."""

        def change(tenant: Tenant) -> Tenant:
            tenant.deleted = True
            tenant.deleted_at = tenant.deleted_at or utcnow()
            if remove_remote:
                tenant.remote_removal = "requested"
            tenant.api_key_hashes = []
            tenant.schedule = None
            return tenant

        before = await self.get_tenant(tenant_id)
        if before is None:
            raise TenantNotFound(tenant_id)
        if isinstance(before.target, V2PoolTarget) and before.target.pool is not None:
            deleted = await self._leave_pool(tenant_id, change, before.target.pool)
        else:
            deleted = await self.update_tenant(tenant_id, change)
        await self.drop_api_keys(before.api_key_hashes)
        await reply(self.redis.zrem(self.keys.tenants, tenant_id))
        # The archiver moves offboarded tenants' records after a grace period.
        stamp = (deleted.deleted_at or utcnow()).timestamp()
        await reply(self.redis.zadd(self.keys.offboarded, {tenant_id: stamp}, nx=True))
        return deleted

    async def _leave_pool(
        self, tenant_id: str, change: Callable[[Tenant], Tenant], pool: str, attempts: int = 20
    ) -> Tenant:
        """Offboard a pooled tenant: the record marked deleted and the pool's count one lower
        in one write (once: a tenant deleted already left its pool)."""
        for _ in range(attempts):
            tenant, version = await self._tenant_with_version(tenant_id)
            if tenant.deleted:
                return tenant
            updated = change(tenant.model_copy(deep=True))
            saved = await self._save_leaving_pool(
                keys=[self.keys.tenant(tenant_id), self.keys.v2_pool_tenants],
                args=[version, updated.model_dump_json(), pool],
            )
            if saved:
                return updated
        raise StaleRecord(f"tenant {tenant_id} kept changing")
