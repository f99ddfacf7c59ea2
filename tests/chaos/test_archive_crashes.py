"""The archiver dies at each of its crash points: no run lost, none archived twice.

Each point gets its own key prefix and tenants. A pass runs in its own process with the
point enabled; it exits (137, like SIGKILL) the first time each part reaches the point and
is started again, with its lease taken as lapsed (what its TTL does), until a pass ends
cleanly. Then every run is in Redis or in exactly one part, every archived run is indexed to
the part that holds it, and no intent is left.
"""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from azure.storage.blob.aio import ContainerClient
from pydantic import SecretStr

from tests.chaos.support import report, sizes
from tests.integration.test_archive import finished_runs, new_tenant
from worker.archive_parts import ARCHIVE_PREFIX, PartName, decode_part
from worker.blobs import BlobStore
from worker.failpoints import ARCHIVE_POINTS, CRASH_EXIT_CODE
from worker.keys import Keys
from worker.store import Store

ROOT = Path(__file__).resolve().parents[2]
CONTAINER = "archive-chaos"
MAX_PASSES = 40


@pytest.fixture
async def blobs(blob_connection_string: str) -> AsyncIterator[BlobStore]:
    """The archive's container, emptied first."""
    async with BlobStore(SecretStr(blob_connection_string), CONTAINER) as store:
        await store.ensure_container()
        async with ContainerClient.from_connection_string(
            blob_connection_string, CONTAINER
        ) as container:
            async for blob in container.list_blobs():
                await container.delete_blob(blob.name)
        yield store


async def parts_of(connection: str, tenant_ids: list[str]) -> list[str]:
    """Paths of the archive parts of these tenants."""
    paths = []
    async with ContainerClient.from_connection_string(connection, CONTAINER) as container:
        for tenant_id in tenant_ids:
            async for blob in container.list_blobs(
                name_starts_with=f"{ARCHIVE_PREFIX}/{tenant_id}/"
            ):
                paths.append(blob.name)
    return paths


async def archive_until_clean(redis_url: str, connection: str, store: Store, point: str) -> int:
    """Run passes until one ends cleanly; the number of crashes."""
    for crashes in range(MAX_PASSES):
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.chaos.archive_pass",
            redis_url,
            connection,
            CONTAINER,
            store.keys.prefix,
            point,
            cwd=ROOT,
        )
        code = await proc.wait()
        if code == 0:
            return crashes
        assert code == CRASH_EXIT_CODE, f"archiver pass exited {code}"
        await store.redis.delete(store.keys.archive_lease)  # its TTL lapsing, without the wait
    raise AssertionError(f"{point}: no clean pass in {MAX_PASSES}")


@pytest.mark.parametrize("tenants", sizes(3, 20, bounded_timeout=240, full_timeout=900))
async def test_a_crash_at_every_archive_point_loses_no_run_and_archives_none_twice(
    redis: aioredis.Redis,
    redis_url: str,
    blob_connection_string: str,
    blobs: BlobStore,
    tenants: int,
) -> None:
    """Every point x N tenants of 4 runs (keep 1): 3 archived per tenant, each in one part."""
    figures: dict[str, dict[str, int]] = {}
    problems: list[str] = []
    for point in sorted(ARCHIVE_POINTS):
        store = Store(redis, Keys(f"ac-{point.split('.')[1].replace('_', '-')}"))
        tenant_ids = [f"{store.keys.prefix}-{index}" for index in range(tenants)]
        run_ids: list[str] = []
        for tenant_id in tenant_ids:
            await new_tenant(store, tenant_id)
            run_ids += [run.id for run in await finished_runs(store, tenant_id, 4)]
        crashes = await archive_until_clean(redis_url, blob_connection_string, store, point)
        in_redis = {run.id for run in await store.get_runs(run_ids)}
        seen: Counter[str] = Counter()
        misindexed = 0
        for part in await parts_of(blob_connection_string, tenant_ids):
            for run in decode_part(await blobs.download(part)):
                seen[run.id] += 1
                where = await store.ledger.archived_at(run.id)
                misindexed += where is None or PartName.parse(where).path != part
        row = {
            "runs": len(run_ids),
            "crashes": crashes,
            "in_redis": len(in_redis),
            "archived": len(seen),
            "lost": sum(1 for i in run_ids if i not in in_redis and seen[i] == 0),
            "archived_twice": sum(1 for i in run_ids if seen[i] > 1),
            "in_both": len(in_redis & set(seen)),
            "misindexed": misindexed,
            "intents_left": len(await store.ledger.archive_intents()),
        }
        figures[point] = row
        if (
            row["crashes"] < 1
            or row["in_redis"] != tenants
            or row["archived"] != 3 * tenants
            or row["lost"]
            or row["archived_twice"]
            or row["in_both"]
            or row["misindexed"]
            or row["intents_left"]
        ):
            problems.append(f"{point}: {row}")
    report("archive-crashes", tenants=tenants, points=figures)
    assert not problems, "\n".join(problems)
