"""Tenants of Azure ML v2 serving pools at onboarding and on change: which pool a new tenant
joins, and the problems when it cannot (``docs/AZUREML-V2.md`` §6).

A ``v2_pool`` target naming a pool joins that pool; one naming none joins the pool with the
most room (``assign_pool``) among those of the tenant's training service, or of any service
when the body names none (the tenant then trains on its pool's service). The counts read
here only choose: the tenant records' writer admits the tenant and counts it in one write,
while the pool still has room (``PoolFull`` otherwise).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from producer.api.problems import Problem
from worker.azureml_v2.pool import assign_pool
from worker.schemas import Tenant, V2PoolTarget
from worker.settings import RetrainqSettings, V2PoolConfig

UNPROCESSABLE = "Unprocessable Content"


def _unknown(detail: str, pools: Mapping[str, V2PoolConfig]) -> Problem:
    return Problem(
        422, UNPROCESSABLE, detail, code="unknown_pool", field="target.pool", known=sorted(pools)
    )


def _full(detail: str, code: str, counts: Mapping[str, int], **extra: Any) -> Problem:
    return Problem(409, "Conflict", detail, code=code, tenants=dict(counts), **extra)


def joined_pool(
    settings: RetrainqSettings, tenant: Tenant, counts: Mapping[str, int], *, named_service: bool
) -> Tenant:
    """The new ``tenant`` with the pool it joins named in its target (and, unless the body
    named its training service, that pool's service); other targets unchanged. Pure."""
    target = tenant.target
    if not isinstance(target, V2PoolTarget):
        return tenant
    pools = settings.v2_pools
    if not pools:
        raise _unknown("no v2 serving pools are configured (RETRAINQ_V2_POOLS)", pools)
    service = tenant.training_service
    if target.pool is not None:
        pool = pools.get(target.pool)
        if pool is None:
            raise _unknown(f"target.pool: no v2 serving pool {target.pool!r}", pools)
        if named_service and pool.service != service:
            raise _unknown(
                f"target.pool: pool {target.pool!r} serves models of training service "
                f"{pool.service!r}, not {service!r}",
                pools,
            )
        if counts.get(target.pool, 0) >= pool.capacity:
            raise _full(
                f"pool {target.pool!r} is full ({pool.capacity} tenants)",
                "pool_full",
                counts,
                pool=target.pool,
            )
        chosen = target.pool
    else:
        fitting = {n: p for n, p in pools.items() if not named_service or p.service == service}
        if not fitting:
            raise _unknown(f"no v2 serving pool serves training service {service!r}", pools)
        found = assign_pool(fitting, counts)
        if found is None:
            raise _full("every v2 serving pool is full", "pools_full", counts)
        chosen = found
    update = {"target": V2PoolTarget(pool=chosen), "training_service": pools[chosen].service}
    return tenant.model_copy(update=update)


def pool_capacity(settings: RetrainqSettings, tenant: Tenant) -> int | None:
    """The capacity of the pool the tenant joins (None: not a pool tenant)."""
    target = tenant.target
    if isinstance(target, V2PoolTarget) and target.pool in settings.v2_pools:
        return settings.v2_pools[target.pool].capacity
    return None


def filled_meanwhile(pool: str) -> Problem:
    """The pool filled up between its choice and the tenant's write: 409 (ask again)."""
    return Problem(
        409,
        "Conflict",
        f"pool {pool!r} filled up while the tenant was onboarded; try again",
        code="pool_full",
        pool=pool,
    )


def kept_pool(
    settings: RetrainqSettings, current: Tenant, changes: dict[str, Any]
) -> dict[str, Any]:
    """A change of a tenant that keeps its pool membership as it is: a tenant joins a pool
    at onboarding and leaves it by offboarding (the pools' counts follow those two). A
    ``v2_pool`` target naming no pool, or the tenant's own, stays the tenant's target."""
    before = current.target
    if "target" in changes:
        after = changes["target"]
        if isinstance(after, V2PoolTarget) and isinstance(before, V2PoolTarget):
            if after.pool not in (None, before.pool):
                raise _fixed("a tenant stays in its v2 pool; offboard it to move it")
            changes = {**changes, "target": before}
        elif isinstance(after, V2PoolTarget) or isinstance(before, V2PoolTarget):
            raise _fixed("a tenant joins a v2 pool at onboarding and leaves it by offboarding")
    service = changes.get("training_service")
    if isinstance(before, V2PoolTarget) and service is not None:
        pool = settings.v2_pools.get(before.pool or "")
        if pool is not None and pool.service != service:
            raise _fixed(
                f"training_service: the tenant's pool {before.pool!r} serves models of "
                f"{pool.service!r}"
            )
    return changes


def _fixed(detail: str) -> Problem:
    return Problem(422, UNPROCESSABLE, detail, code="pool_fixed")
