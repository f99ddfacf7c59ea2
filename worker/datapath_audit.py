"""``retrainq-worker check-data-paths``: list tenants whose data_path is not their own."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import TextIO

import redis.asyncio as aioredis

from worker.datapaths import DataPathError, check_data_path
from worker.keys import Keys
from worker.schemas import Tenant
from worker.tenants import TenantRecords

PAGE = 500


@dataclass(frozen=True)
class ForeignPath:
    """A tenant whose stored data_path its next run will refuse."""

    tenant_id: str
    data_path: str
    reason: str


async def _tenants(records: TenantRecords) -> AsyncIterator[Tenant]:
    offset = 0
    while ids := await records.list_tenant_ids(offset, PAGE):
        for tenant in await records.get_tenants(ids):
            yield tenant
        offset += len(ids)


async def foreign_paths(
    records: TenantRecords, shared_prefixes: Sequence[str]
) -> tuple[int, list[ForeignPath]]:
    """How many tenants were checked, and those whose data path is outside their own."""
    checked = 0
    found: list[ForeignPath] = []
    async for tenant in _tenants(records):
        if tenant.deleted or tenant.data_path is None:
            continue
        checked += 1
        try:
            check_data_path(tenant.id, tenant.data_path, shared_prefixes)
        except DataPathError as exc:
            found.append(ForeignPath(tenant.id, tenant.data_path, str(exc)))
    return checked, found


async def check_data_paths(
    redis_url: str, prefix: str, shared_prefixes: Sequence[str], out: TextIO
) -> int:
    """Print every foreign data path (tab-separated) and a summary; 1 if any was found."""
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        checked, found = await foreign_paths(TenantRecords(client, Keys(prefix)), shared_prefixes)
    finally:
        await client.aclose()
    for item in found:
        print(f"{item.tenant_id}\t{item.data_path}\t{item.reason}", file=out)
    print(
        f"checked {checked} tenants with data: {len(found)} with a data path outside their own "
        "prefix (their next run fails with error code foreign_data_path)",
        file=out,
    )
    return 1 if found else 0
