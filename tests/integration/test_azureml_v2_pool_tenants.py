"""Tenants of a v2 serving pool end to end: the real API (onboarding with its preflight), real
workers, Redis, Azurite and the emulator's v2 workspace with the pooled scorer. Two tenants
join a pool, are retrained and served by the pool's endpoint with their own versions; a
rollback points one back; offboarding takes it out of the pool."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from producer.api.app import create_app
from tests.integration.conftest_api import ADMIN, make_settings
from tests.integration.fleet import Fleet, sample_rows, until
from tests.integration.test_azureml_v2 import SERVICE, services, v2_stats, with_v2_datastore
from tests.integration.test_azureml_v2_pool import POOL, make_pool, target
from tests.integration.test_cli import cli
from worker.schemas import Run, RunState, Tenant, V2PoolTarget

pytestmark = pytest.mark.timeout(240)
Api = TestClient[web.Request, web.Application]
POOLS = {"p1": POOL.model_copy(update={"capacity": 2}).model_dump(mode="json")}


@pytest.fixture
async def v2_fleet(fleet: Fleet) -> Fleet:
    """The fleet with a clean v2 emulator, its datastore and the pool's endpoint serving."""
    await with_v2_datastore(fleet)
    await make_pool(fleet)
    return fleet


@pytest.fixture
async def api(v2_fleet: Fleet) -> AsyncIterator[Api]:
    """The API on the fleet's Redis and container, its preflight on the emulator, one pool."""
    fleet, arm = v2_fleet, v2_fleet.config["arm"]
    settings = make_settings(
        fleet.redis_url,
        fleet.blob_connection_string,
        preflight=True,
        training_services=json.loads(services(fleet)),
        v2_pools=POOLS,
        blob={"connection_string": fleet.blob_connection_string, "container": "retrainq"},
        azureml={
            "arm_url": fleet.emulator_url,
            "subscription_id": arm["subscription_id"],
            "resource_group": arm["resource_groups"][0],
            "arm_token": arm["token"],
        },
    )
    async with TestClient(TestServer(create_app(settings))) as client:
        yield client


def start_workers(fleet: Fleet) -> None:
    """One worker knowing the v2 service and the pool."""
    fleet.run_workers(
        1, RETRAINQ_TRAINING_SERVICES=services(fleet), RETRAINQ_V2_POOLS=json.dumps(POOLS)
    )


async def onboard(fleet: Fleet, api: Api, tenant_id: str, **fields: Any) -> Any:
    """POST /v1/tenants for a tenant with data v1 uploaded; the answer."""
    path = await fleet.upload(tenant_id, version=1)
    body = {"id": tenant_id, "data_path": path, **fields}
    return await api.post("/v1/tenants", json=body, headers=ADMIN)


async def created(answer: Any) -> dict[str, Any]:
    """The 201 body of an onboarding."""
    assert answer.status == 201, await answer.text()
    body: dict[str, Any] = await answer.json()
    return body


async def problem(answer: Any, status: int, code: str) -> dict[str, Any]:
    """The problem+json body of a refused request."""
    assert answer.status == status, await answer.text()
    assert answer.content_type == "application/problem+json"
    body: dict[str, Any] = await answer.json()
    assert body["code"] == code, body
    return body


async def finished(fleet: Fleet, run_id: str) -> Run:
    """The run once it ended; it must have succeeded."""
    (run,) = await fleet.wait_terminal([run_id], within=120)
    assert run.state is RunState.SUCCEEDED, run.error
    return run


async def served(fleet: Fleet, tenant_id: str) -> tuple[str, list[float]]:
    """The version and predictions the pool's endpoint answers for the tenant."""
    rows = sample_rows(fleet, tenant_id)
    answer = await target(fleet).endpoint.score(fleet.http, tenant_id, rows)
    return answer.version, [float(p["Scored Labels"]) for p in answer.predictions]


async def served_status(fleet: Fleet, tenant_id: str) -> int:
    """The HTTP status the pool's endpoint answers a tenant's rows with."""
    uri, key = await target(fleet).endpoint.access()
    body = {"tenant": tenant_id, "rows": sample_rows(fleet, tenant_id)}
    headers = {"Authorization": f"Bearer {key.get_secret_value()}"}
    async with fleet.http.post(uri, json=body, headers=headers) as reply:
        return reply.status


async def test_two_tenants_share_a_pool_through_retrain_rollback_and_offboarding(
    v2_fleet: Fleet, api: Api
) -> None:
    """One tenant is assigned the pool, one names it; both pass the pool's preflight, train
    on the v2 service (judged in reported mode: a pool has no staging endpoint), and the pool
    answers each with its own version and model. Retrained, each is served its new version; a
    rollback points one back; offboarding archives it and frees its place in the pool."""
    fleet = v2_fleet
    first_a = await created(await onboard(fleet, api, "pool-a", target={"kind": "v2_pool"}))
    named = {"kind": "v2_pool", "pool": "p1"}
    first_b = await created(
        await onboard(fleet, api, "pool-b", target=named, training_service=SERVICE)
    )
    for onboarded in (first_a, first_b):
        tenant = onboarded["tenant"]
        assert (tenant["target"], tenant["training_service"]) == (named, SERVICE)
        assert tenant["verified"] is True
    assert await fleet.store.pool_tenants() == {"p1": 2}
    start_workers(fleet)

    runs = {
        t: await finished(fleet, a["run"]["id"])
        for t, a in (("pool-a", first_a), ("pool-b", first_b))
    }
    for tenant_id, run in runs.items():
        assert run.evaluation == "reported"
        assert run.decision is not None
        assert "classic target" in (run.decision.note or "")
        version, predictions = await served(fleet, tenant_id)
        assert version == str(run.seq)
        rows = sample_rows(fleet, tenant_id)
        assert predictions == pytest.approx(fleet.expected(tenant_id, rows))
    assert (await served(fleet, "pool-a"))[1] != (await served(fleet, "pool-b"))[1]

    again = {}
    for tenant_id in runs:
        answer = await api.post(f"/v1/tenants/{tenant_id}/retrains", headers=ADMIN)
        assert answer.status == 202, await answer.text()
        again[tenant_id] = await finished(fleet, (await answer.json())["run"]["id"])
    for tenant_id, run in again.items():
        assert (await served(fleet, tenant_id))[0] == str(run.seq)
        current = await fleet.store.get_tenant(tenant_id)
        assert current is not None
        assert current.deployed is not None
        assert current.deployed.run_id == run.id

    answer = await api.post("/v1/tenants/pool-a/rollback", headers=ADMIN)
    assert answer.status == 202, await answer.text()
    rollback = await finished(fleet, (await answer.json())["run"]["id"])
    assert rollback.rollback_to == runs["pool-a"].id
    assert (await served(fleet, "pool-a"))[0] == str(runs["pool-a"].seq)
    assert (await served(fleet, "pool-b"))[0] == str(again["pool-b"].seq)
    history = (await v2_stats(fleet))["models"]["rq-pool-a"]["tag_history"]
    pointed_by = [int(tags["retrainq-deployed-by"]) for tags in history]
    assert pointed_by == sorted(pointed_by)

    answer = await api.delete("/v1/tenants/pool-a?remove_remote=true", headers=ADMIN)
    assert answer.status == 200, await answer.text()

    async def removed() -> bool:
        tenant = await fleet.store.get_tenant("pool-a")
        return tenant is not None and tenant.remote_removal == "done"

    await until(removed, within=60)
    container = await target(fleet).registry.client.get_container("rq-pool-a")
    assert container is not None
    assert container["properties"]["isArchived"] is True
    assert await served_status(fleet, "pool-a") == 404
    assert (await served(fleet, "pool-b"))[0] == str(again["pool-b"].seq)
    assert await fleet.store.pool_tenants() == {"p1": 1}
    await created(await onboard(fleet, api, "pool-c", target={"kind": "v2_pool"}))


async def test_onboarding_onto_pools_that_cannot_take_the_tenant_is_refused(
    v2_fleet: Fleet, api: Api
) -> None:
    """An unknown pool, a pool of another training service and a full pool are problems
    naming why; a refused tenant is not stored and takes no place in the pool."""
    fleet = v2_fleet
    answer = await onboard(fleet, api, "nopool", target={"kind": "v2_pool", "pool": "p9"})
    assert (await problem(answer, 422, "unknown_pool"))["known"] == ["p1"]
    answer = await onboard(
        fleet, api, "elsewhere", target={"kind": "v2_pool"}, training_service="default"
    )
    await problem(answer, 422, "unknown_pool")
    for tenant_id in ("full-1", "full-2"):
        await created(await onboard(fleet, api, tenant_id, target={"kind": "v2_pool"}, train=False))
    answer = await onboard(fleet, api, "full-3", target={"kind": "v2_pool"})
    assert (await problem(answer, 409, "pools_full"))["tenants"] == {"p1": 2}
    answer = await onboard(fleet, api, "full-4", target={"kind": "v2_pool", "pool": "p1"})
    await problem(answer, 409, "pool_full")
    for tenant_id in ("nopool", "elsewhere", "full-3", "full-4"):
        assert await fleet.store.get_tenant(tenant_id) is None
    listed = await (await api.get("/v1/tenants?kind=v2_pool", headers=ADMIN)).json()
    assert [item["id"] for item in listed["items"]] == ["full-1", "full-2"]
    assert await fleet.store.pool_tenants() == {"p1": 2}
    moved = await api.patch(
        "/v1/tenants/full-1",
        json={"target": {"kind": "new", "template_service": "bike-rental-template"}},
        headers=ADMIN,
    )
    await problem(moved, 422, "pool_fixed")
    same = await api.patch(
        "/v1/tenants/full-1", json={"target": {"kind": "v2_pool"}}, headers=ADMIN
    )
    assert same.status == 200, await same.text()
    assert (await same.json())["target"] == {"kind": "v2_pool", "pool": "p1"}
    stored = await fleet.store.get_tenant("full-1")
    assert stored is not None
    assert stored.target == V2PoolTarget(pool="p1")


async def test_the_last_place_of_a_pool_goes_to_one_of_two_racing_onboardings(
    fleet: Fleet,
) -> None:
    """Two tenants written at once for one free place: one is stored and counted, the other
    refused as PoolFull and not stored; offboarding counts the place free once."""
    pooled = [Tenant(id=f"race-{n}", target=V2PoolTarget(pool="p1")) for n in (1, 2)]
    outcomes = await asyncio.gather(
        *(fleet.store.create_tenant(t, pool_capacity=1) for t in pooled), return_exceptions=True
    )
    assert sorted(type(o).__name__ for o in outcomes) == ["NoneType", "PoolFull"]
    stored = [t.id for t in pooled if await fleet.store.get_tenant(t.id) is not None]
    assert len(stored) == 1
    assert await fleet.store.pool_tenants() == {"p1": 1}
    await fleet.store.offboard_tenant(stored[0])
    await fleet.store.offboard_tenant(stored[0])
    assert await fleet.store.pool_tenants() == {"p1": 0}


async def test_the_cli_onboards_onto_a_pool_and_lists_the_kind(
    v2_fleet: Fleet,
    api: Api,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """``tenants create --v2-pool`` without a pool or a service joins the pool with room and
    trains on its service; ``tenants list --kind v2_pool`` shows the tenant."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RETRAINQ_API_URL", raising=False)
    assert await cli(api, "tenants", "create", "cli-a", "--v2-pool", "--no-train") == 0
    assert "api key" in capsys.readouterr().out
    stored = await v2_fleet.store.get_tenant("cli-a")
    assert stored is not None
    assert (stored.target, stored.training_service) == (V2PoolTarget(pool="p1"), SERVICE)
    assert await cli(api, "tenants", "list", "--kind", "v2_pool", "--json") == 0
    assert '"cli-a"' in capsys.readouterr().out
