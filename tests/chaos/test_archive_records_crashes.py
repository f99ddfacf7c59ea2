"""The archiver dies at each crash point while it archives batches and model history:
each batch and each history entry ends in Redis or in exactly one part, never both.

Like ``test_archive_crashes``: each point gets its own key prefix; a pass runs in its own
process and exits at the point the first time each part reaches it, until one ends cleanly.
"""

from __future__ import annotations

from collections import Counter

import pytest
import redis.asyncio as aioredis
from azure.storage.blob.aio import ContainerClient

from tests.chaos.support import report, sizes
from tests.chaos.test_archive_crashes import CONTAINER, archive_until_clean, blobs
from tests.integration.test_archive import new_tenant
from tests.integration.test_archive_records import batch_of, deployments
from worker.archive_records import BATCH_PREFIX, MODEL_PREFIX, BatchSummary, decode_lines
from worker.blobs import BlobStore
from worker.failpoints import ARCHIVE_POINTS
from worker.keys import Keys
from worker.run.model import RunState
from worker.schemas import DeployedModel
from worker.store import Store

__all__ = ["blobs"]  # the emptied archive container, shared with test_archive_crashes
DEPLOYS = 7  # the pass keeps the default 5 deployed versions: 2 entries per tenant move


async def lines_under(connection: str, prefix: str) -> list[str]:
    """Every JSON line of the parts under ``prefix``."""
    lines: list[str] = []
    async with ContainerClient.from_connection_string(connection, CONTAINER) as container:
        async for blob in container.list_blobs(name_starts_with=prefix):
            data = await (await container.download_blob(blob.name)).readall()
            lines += decode_lines(data)
    return lines


@pytest.mark.parametrize("tenants", sizes(2, 10, bounded_timeout=240, full_timeout=900))
async def test_a_crash_at_every_point_loses_no_batch_or_history_entry_and_copies_none(
    redis: aioredis.Redis,
    redis_url: str,
    blob_connection_string: str,
    blobs: BlobStore,
    tenants: int,
) -> None:
    """Every point x N tenants, one finished batch each and 7 deployments each."""
    figures: dict[str, dict[str, int]] = {}
    problems: list[str] = []
    for point in sorted(ARCHIVE_POINTS):
        store = Store(redis, Keys(f"ar-{point.split('.')[1].replace('_', '-')}"))
        tenant_ids = [f"{store.keys.prefix}-{index}" for index in range(tenants)]
        batch_ids: list[str] = []
        entries: dict[str, str] = {}  # run id of a deployment -> its tenant
        for tenant_id in tenant_ids:
            await new_tenant(store, tenant_id)
            batch_ids.append((await batch_of(store, [tenant_id], RunState.FAILED)).id)
            for run in await deployments(store, tenant_id, DEPLOYS):
                entries[run.id] = tenant_id
        crashes = await archive_until_clean(redis_url, blob_connection_string, store, point)
        batch_lines = await lines_under(blob_connection_string, f"{BATCH_PREFIX}/")
        summaries = Counter(BatchSummary.model_validate_json(line).id for line in batch_lines)
        model_lines = [
            line
            for tenant_id in tenant_ids
            for line in await lines_under(blob_connection_string, f"{MODEL_PREFIX}/{tenant_id}/")
        ]
        archived_entries = Counter(
            DeployedModel.model_validate_json(line).run_id for line in model_lines
        )
        live_batches = {b for b in batch_ids if await store.get_batch(b) is not None}
        live_entries = {
            m.run_id for tenant_id in tenant_ids for m in await store.model_history(tenant_id)
        }
        row = {
            "crashes": crashes,
            "batches_lost": sum(1 for b in batch_ids if b not in live_batches and not summaries[b]),
            "batches_twice": sum(1 for b in batch_ids if summaries[b] > 1),
            "batches_in_both": len(live_batches & set(summaries)),
            "batches_archived": sum(1 for b in batch_ids if summaries[b]),
            "entries_lost": sum(
                1 for e in entries if e not in live_entries and not archived_entries[e]
            ),
            "entries_twice": sum(1 for e in entries if archived_entries[e] > 1),
            "entries_in_both": len(live_entries & set(archived_entries)),
            "entries_left": len(live_entries),
            "intents_left": len(await store.ledger.archive_intents()),
        }
        figures[point] = row
        expected_left = 5 * tenants
        if (
            row["crashes"] < 1
            or row["batches_archived"] != tenants
            or row["entries_left"] != expected_left
            or any(row[k] for k in row if k.endswith(("lost", "twice", "both", "intents_left")))
        ):
            problems.append(f"{point}: {row}")
    report("archive-records-crashes", tenants=tenants, points=figures)
    assert not problems, "\n".join(problems)
