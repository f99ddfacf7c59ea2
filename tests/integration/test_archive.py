"""The archiver against real Redis and Azurite: retention, parts, removal, reads by id."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
import redis.asyncio as aioredis
from pydantic import SecretStr

from producer.cli.client import ApiClient
from producer.schemas import RunView
from tests.integration.conftest_api import ADMIN, ApiTestClient, bearer, onboard
from tests.runs import put_in_state
from worker.archive import Archiver
from worker.archive_parts import ArchivedRuns, PartName, decode_part
from worker.blobs import BlobStore
from worker.keys import Keys
from worker.run.model import Run, RunState
from worker.schemas import Batch, ClassicTarget, DeployedModel, Tenant, utcnow
from worker.settings import ArchiveConfig
from worker.store import RunRequest, Store

LATER = timedelta(days=40)  # past the default 30 days of retention


@pytest.fixture
async def blobs(blob_connection_string: str) -> AsyncIterator[BlobStore]:
    """The container the API tests use (the archiver writes where the API reads)."""
    async with BlobStore(SecretStr(blob_connection_string), "api-tests") as store:
        await store.ensure_container()
        yield store


def archiver(store: Store, blobs: BlobStore, **config: float) -> Archiver:
    """An archiver with retention ``config`` (defaults otherwise)."""
    values = {"min_part_runs": 1, **config}  # these tests archive a run or two
    return Archiver(store, blobs, ArchiveConfig.model_validate(values), owner="test-worker")


async def finished_runs(store: Store, tenant_id: str, count: int) -> list[Run]:
    """``count`` runs of the tenant, one after the other, each failed at once."""
    runs = []
    for _ in range(count):
        created = await store.create_run(RunRequest(tenant_id=tenant_id))
        run = await store.get_run(created.run_id)
        assert run is not None
        runs.append(await put_in_state(store, run, RunState.FAILED))
    return runs


async def new_tenant(store: Store, tenant_id: str) -> None:
    """A tenant with no runs."""
    target = ClassicTarget(web_service_id="svc", resource_name="Model [trained model]")
    await store.create_tenant(Tenant(id=tenant_id, target=target))


async def test_runs_past_retention_move_to_one_part_and_leave_redis(
    redis: aioredis.Redis, blobs: BlobStore
) -> None:
    """Of 5 finished runs with keep_runs=2, the 3 oldest go to one part; a second pass
    archives nothing and writes no part."""
    store = Store(redis, Keys("arch1"))
    await new_tenant(store, "acme")
    runs = await finished_runs(store, "acme", 5)
    first = await archiver(store, blobs, keep_runs=2).archive_once(utcnow() + LATER)
    assert first.archived == 3
    (part,) = first.parts
    archived = {run.id for run in decode_part(await blobs.download(part))}
    kept = set(await store.tenant_run_ids("acme", 0, 10))
    assert len(kept) == 2
    assert archived == {run.id for run in runs} - kept
    for run_id in archived:
        assert await store.get_run(run_id) is None
        where = await store.ledger.archived_at(run_id)
        assert where is not None
        assert PartName.parse(where).path == part
    assert await store.ledger.archive_intents() == {}
    again = await archiver(store, blobs, keep_runs=2).archive_once(utcnow() + LATER)
    assert (again.archived, again.parts) == (0, [])


async def test_young_active_and_deployed_runs_stay(redis: aioredis.Redis, blobs: BlobStore) -> None:
    """Runs younger than keep_days, the active run, the deployed run and the runs behind the
    last keep_deployed versions are never archived."""
    store = Store(redis, Keys("arch2"))
    await new_tenant(store, "acme")
    runs = await finished_runs(store, "acme", 6)
    young = await archiver(store, blobs, keep_runs=1).archive_once(utcnow())
    assert young.archived == 0
    for index in (1, 2):
        model = DeployedModel(
            run_id=runs[index].id, seq=runs[index].seq, model_path="m", deployed_at=utcnow()
        )
        assert await store.record_deployment("acme", model)
    active = await store.create_run(RunRequest(tenant_id="acme"))
    done = await archiver(store, blobs, keep_runs=1, keep_deployed=1).archive_once(utcnow() + LATER)
    # Kept: the active run, runs[2] (deployed, the last keep_deployed=1 version) and one
    # newest finished run (runs created in one millisecond tie, so which one is left open);
    # runs[1] is older history.
    kept = set(await store.tenant_run_ids("acme", 0, 10))
    assert len(kept) == 3
    assert {active.run_id, runs[2].id} <= kept
    assert runs[1].id not in kept
    assert done.archived == 4


async def test_an_archived_run_is_read_by_id_by_its_tenant_and_admin_only(
    api: ApiTestClient, redis: aioredis.Redis, blobs: BlobStore
) -> None:
    """GET /v1/runs/{id} serves an archived run with archived: true to its tenant's key and
    to admin; another tenant's key gets the 404 of an unknown id."""
    store = Store(redis)
    acme = await onboard(api, "acme")
    other = await onboard(api, "other")
    runs = await finished_runs(store, "acme", 2)
    done = await archiver(store, blobs, keep_runs=1).archive_once(utcnow() + LATER)
    assert done.archived == 1
    (live_id,) = await store.tenant_run_ids("acme", 0, 10)
    (old,) = {run.id for run in runs} - {live_id}
    for headers in (ADMIN, bearer(acme["api_key"])):
        shown = await api.get(f"/v1/runs/{old}", headers=headers)
        assert shown.status == 200, await shown.text()
        body = await shown.json()
        assert body["archived"] is True
        assert (body["id"], body["tenant_id"], body["state"]) == (old, "acme", "failed")
    live = await (await api.get(f"/v1/runs/{live_id}", headers=ADMIN)).json()
    assert "archived" not in live
    foreign = await api.get(f"/v1/runs/{old}", headers=bearer(other["api_key"]))
    unknown = await api.get(f"/v1/runs/{'0' * 32}", headers=bearer(other["api_key"]))
    assert foreign.status == unknown.status == 404
    assert (await foreign.json())["title"] == (await unknown.json())["title"]
    client = ApiClient(str(api.make_url("")), SecretStr(acme["api_key"]), api.session)
    shown_by_cli = await client.run(old)
    assert isinstance(shown_by_cli, RunView)
    assert shown_by_cli.archived
    reader = ArchivedRuns(store.ledger, blobs)
    assert await reader.find(old, "other") is None
    found = await reader.find(old, "acme")
    assert found is not None
    assert found.id == old


async def test_a_pass_waits_for_the_lease_another_worker_holds(
    redis: aioredis.Redis, blobs: BlobStore
) -> None:
    """While another worker holds the archiver's lease, a pass does nothing."""
    store = Store(redis, Keys("arch4"))
    await new_tenant(store, "acme")
    await finished_runs(store, "acme", 3)
    await redis.set(store.keys.archive_lease, "someone-else", px=60_000)
    skipped = await archiver(store, blobs, keep_runs=1).archive_once(utcnow() + LATER)
    assert not skipped.held
    assert skipped.archived == 0
    assert len(await store.tenant_run_ids("acme", 0, 10)) == 3


async def test_archived_batch_runs_leave_the_batch_list_and_the_batch_stays(
    redis: aioredis.Redis, blobs: BlobStore
) -> None:
    """An archived run leaves its batch's run list; the batch record and counters of a batch
    still running stay."""
    store = Store(redis, Keys("arch5"))
    await new_tenant(store, "acme")
    await new_tenant(store, "beta")
    batch = Batch(id="b" * 32, total=3)
    await store.create_batch(batch)
    runs = []
    for _ in range(2):
        created = await store.create_run(RunRequest(tenant_id="acme", batch_id=batch.id))
        run = await store.get_run(created.run_id)
        assert run is not None
        runs.append(await put_in_state(store, run, RunState.FAILED))
    running = await store.create_run(RunRequest(tenant_id="beta", batch_id=batch.id))
    done = await archiver(store, blobs, keep_runs=1).archive_once(utcnow() + LATER)
    assert (done.archived, done.batches) == (1, 0)
    kept = await store.tenant_run_ids("acme", 0, 10)
    assert await store.batch_run_ids(batch.id) == [*kept, running.run_id]
    found = await store.get_batch(batch.id)
    assert found is not None
    assert found[1]["n:failed"] == 2


async def test_the_run_an_active_rollback_restores_stays(
    redis: aioredis.Redis, blobs: BlobStore
) -> None:
    """A finished run an active rollback run restores is kept, past retention or not."""
    store = Store(redis, Keys("arch6"))
    await new_tenant(store, "acme")
    runs = await finished_runs(store, "acme", 3)
    rollback = await store.create_run(RunRequest(tenant_id="acme", rollback_to=runs[0].id))
    done = await archiver(store, blobs, keep_runs=1).archive_once(utcnow() + LATER)
    kept = set(await store.tenant_run_ids("acme", 0, 10))
    assert {rollback.run_id, runs[0].id} <= kept
    assert done.archived >= 1
    assert len(kept) == 4 - done.archived
