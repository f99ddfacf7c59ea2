"""Removing an offboarded tenant's remote resources: its classic endpoint or its web service."""

from __future__ import annotations

from typing import Literal

import structlog

from worker.azureml.errors import PermanentError, TransientError
from worker.deps import Deps
from worker.logs import bind_context, clear_context
from worker.schemas import Tenant

log = structlog.get_logger("retrainq.offboard")

MAX_TRIES = 8
Outcome = Literal["done", "failed", "retry"]


async def remove_remote(deps: Deps, tenant_id: str, attempt: int) -> Outcome:
    """Delete the tenant's endpoint or service (a delete of what is gone is fine)."""
    clear_context()
    bind_context(tenant_id=tenant_id)
    tenant = await deps.store.get_tenant(tenant_id)
    if tenant is None or not tenant.deleted or tenant.remote_removal != "requested":
        return "done"
    try:
        await deps.deployer.remove(tenant)
    except TransientError as exc:
        if attempt < MAX_TRIES:
            log.warning("offboard.retry", error=str(exc), attempt=attempt)
            return "retry"
        return await _record(deps, tenant_id, "failed", str(exc))
    except PermanentError as exc:
        return await _record(deps, tenant_id, "failed", str(exc))
    return await _record(deps, tenant_id, "done", None)


async def _record(
    deps: Deps, tenant_id: str, outcome: Literal["done", "failed"], error: str | None
) -> Outcome:
    def change(tenant: Tenant) -> Tenant:
        return tenant.model_copy(update={"remote_removal": outcome})

    await deps.store.update_tenant(tenant_id, change)
    log.info(f"offboard.{outcome}", error=error)
    return outcome
