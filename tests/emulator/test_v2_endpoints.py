"""The emulator's online endpoints: LROs, traffic rules, quotas, and scoring through the
pooled scorer of deploy/azureml-v2/score.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from emulator.app import create_app
from emulator.config import BIKE_RENTAL, EmulatorSettings, default_config
from emulator.datagen import bike_rental_csv
from emulator.training import parse_csv, train
from emulator.v2.state import V2_STATE
from producer.devtools.processes import free_port
from tests.azureml_v2 import API
from tests.emulator.conftest import Blobs, Emu, bearer
from tests.emulator.test_v2_jobs import v2_stats, with_datastore, ws


@pytest.fixture
async def tight() -> AsyncIterator[Emu]:
    """The emulator with two deployments per endpoint and provisioning in 50 ms."""
    config = default_config()
    config.settings.provisioning_delay_seconds = 0.05
    port = free_port()
    settings = EmulatorSettings(_env_file=None, host="127.0.0.1", port=port, seed=7)
    app = create_app(config, settings)
    app[V2_STATE].config.max_deployments_per_endpoint = 2
    server = TestServer(app, host="127.0.0.1", port=port)
    await server.start_server()
    async with aiohttp.ClientSession() as http:
        yield Emu(url=f"http://127.0.0.1:{port}", http=http, config=config)
    await server.close()


async def call(emu: Emu, method: str, path: str, body: object = None) -> tuple[int, Any, Any]:
    """(status, body, headers) of one ARM call under the v2 workspace."""
    async with emu.http.request(
        method, f"{ws(emu)}/{path}?{API}", json=body, headers=emu.arm_auth
    ) as reply:
        text = await reply.text()
        return reply.status, (await reply.json()) if text else None, reply.headers


async def settled(emu: Emu, url: str) -> dict[str, Any]:
    """Poll an Azure-AsyncOperation URL until it is no longer InProgress."""
    for _ in range(200):
        async with emu.http.get(url, headers=emu.arm_auth) as reply:
            body: dict[str, Any] = await reply.json()
        if body["status"] != "InProgress":
            return body
        await asyncio.sleep(0.02)
    raise AssertionError("operation did not end")


def pooled(**env: str) -> dict[str, Any]:
    """A deployment of the pooled scorer."""
    return {
        "location": "westeurope",
        "sku": {"name": "Default", "capacity": 1},
        "properties": {
            "endpointComputeType": "Managed",
            "codeConfiguration": {"codeId": "rq-score/versions/1", "scoringScript": "score.py"},
            "environmentId": "rq-scorer/versions/1",
            "instanceType": "Standard_DS3_v2",
            "environmentVariables": env,
        },
    }


async def endpoint_with(emu: Emu, name: str, *deployments: str, **env: str) -> None:
    """An endpoint with pooled-scorer deployments, all settled."""
    body = {"location": "westeurope", "properties": {"authMode": "Key"}}
    status, reply, headers = await call(emu, "PUT", f"onlineEndpoints/{name}", body)
    assert status == 201, reply
    assert (await settled(emu, headers["Azure-AsyncOperation"]))["status"] == "Succeeded"
    for deployment in deployments:
        path = f"onlineEndpoints/{name}/deployments/{deployment}"
        status, reply, headers = await call(emu, "PUT", path, pooled(**env))
        assert status == 201, reply
        assert (await settled(emu, headers["Azure-AsyncOperation"]))["status"] == "Succeeded"


async def test_endpoints_are_long_running_and_one_write_at_a_time(tight: Emu) -> None:
    """PUT 201 Creating with Azure-AsyncOperation; a write while Creating is 409; then
    Succeeded with a scoring URI; PATCH is 202 with Location that answers 200; DELETE 202."""
    emu = tight
    body = {"location": "westeurope", "properties": {"authMode": "key"}}
    status, reply, headers = await call(emu, "PUT", "onlineEndpoints/pool-a", body)
    assert (status, reply["properties"]["provisioningState"]) == (201, "Creating")
    assert reply["properties"]["authMode"] == "Key"
    assert (await call(emu, "PUT", "onlineEndpoints/pool-a", body))[0] == 409
    assert (await settled(emu, headers["Azure-AsyncOperation"]))["status"] == "Succeeded"
    status, reply, _ = await call(emu, "GET", "onlineEndpoints/pool-a")
    assert reply["properties"]["provisioningState"] == "Succeeded"
    assert reply["properties"]["scoringUri"] == f"{emu.url}/score/pool-a"
    status, _, headers = await call(emu, "PATCH", "onlineEndpoints/pool-a", {"tags": {"a": "1"}})
    assert status == 202
    async with emu.http.get(headers["Location"], headers=emu.arm_auth) as done:
        assert done.status == 200
    assert (await call(emu, "PUT", "onlineEndpoints/-bad", body))[0] == 400
    assert (await call(emu, "DELETE", "onlineEndpoints/pool-a"))[0] == 202
    assert (await call(emu, "DELETE", "onlineEndpoints/pool-a"))[0] == 204


async def test_traffic_rules_quotas_and_failed_provisioning(tight: Emu, blobs: Blobs) -> None:
    """Traffic must sum to 0 or 100 over existing deployments; a deployment with traffic is
    not deleted; a third deployment is OutOfQuota; deployments_fail_next ends one Failed."""
    emu = tight
    await with_datastore(emu, blobs)
    await endpoint_with(emu, "pool-b", "blue", "green")
    path = "onlineEndpoints/pool-b"
    for traffic in ({"blue": 90}, {"red": 100}, {"blue": 50, "green": 60}):
        body = {"location": "westeurope", "properties": {"authMode": "Key", "traffic": traffic}}
        status, reply, _ = await call(emu, "PUT", path, body)
        assert (status, reply["error"]["code"]) == (400, "BadArgument"), traffic
    mirror = {"traffic": {"blue": 100}, "mirrorTraffic": {"green": 60}}
    assert (await call(emu, "PATCH", path, {"properties": mirror}))[0] == 400
    live = {"location": "westeurope", "properties": {"authMode": "Key", "traffic": {"blue": 100}}}
    assert (await call(emu, "PUT", path, live))[0] == 200
    status, reply, _ = await call(emu, "DELETE", f"{path}/deployments/blue")
    assert (status, reply["error"]["code"]) == (400, "BadArgument")
    status, reply, _ = await call(emu, "PUT", f"{path}/deployments/third", pooled())
    assert (status, reply["error"]["code"]) == (400, "OutOfQuota")
    await emu.json("PUT", f"{emu.url}/_emulator/v2/faults", json={"deployments_fail_next": 1})
    assert (await call(emu, "DELETE", f"{path}/deployments/green"))[0] == 202
    status, reply, headers = await call(emu, "PUT", f"{path}/deployments/green", pooled())
    assert status == 201, reply
    failed = await settled(emu, headers["Azure-AsyncOperation"])
    assert (failed["status"], failed["error"]["code"]) == ("Failed", "ResourceNotReady")
    state = (await call(emu, "GET", f"{path}/deployments/green"))[1]["properties"]
    assert state["provisioningState"] == "Failed"


async def test_the_pool_serves_each_tenant_the_version_its_pointer_names(
    emu: Emu, blobs: Blobs
) -> None:
    """The pooled scorer behind an endpoint: the pointed version serves and is named, with the
    trainer's predictions; a moved pointer serves the new version; an explicit version serves
    that one; wrong keys 401; an unknown deployment header 404; a tenant without a pointer 404."""
    await with_datastore(emu, blobs)
    models = {}
    for version, seed in (("1", 1), ("2", 2)):
        models[version] = train(parse_csv(bike_rental_csv("t1", 300, seed=seed)), BIKE_RENTAL)
        path = f"models/t1/v{version}.ilearner"
        await blobs.upload(path, models[version].to_json())
        uri = f"azureml://datastores/store/paths/{path}"
        body = {"properties": {"modelUri": uri, "modelType": "CustomModel"}}
        assert (await call(emu, "PUT", f"models/rq-t1/versions/{version}", body))[0] == 201

    async def point(version: str) -> None:
        body = {"properties": {"tags": {"retrainq-deployed-version": version}}}
        assert (await call(emu, "PUT", "models/rq-t1", body))[0] in (200, 201)

    await point("1")
    await endpoint_with(emu, "pool-c", "scorer", RETRAINQ_POINTER_TTL_SECONDS="0")
    live = {"location": "westeurope", "properties": {"authMode": "Key", "traffic": {"scorer": 100}}}
    assert (await call(emu, "PUT", "onlineEndpoints/pool-c", live))[0] == 200
    _, keys, _ = await call(emu, "POST", "onlineEndpoints/pool-c/listKeys")
    rows = parse_csv(bike_rental_csv("t1", 4, seed=5))

    async def score(body: object, key: str = keys["primaryKey"], **headers: str) -> tuple[int, Any]:
        return await emu.json(
            "POST", f"{emu.url}/score/pool-c", json=body, headers={**bearer(key), **headers}
        )

    status, answer = await score({"tenant": "t1", "rows": rows})
    assert (status, answer["version"], answer["source"]) == (200, "1", "pointer"), answer
    expected = [float(cells[0]) for cells in models["1"].score(rows)]
    assert [float(p["Scored Labels"]) for p in answer["predictions"]] == pytest.approx(expected)
    await point("2")
    assert (await score({"tenant": "t1", "rows": rows}))[1]["version"] == "2"
    status, answer = await score({"tenant": "t1", "rows": rows, "version": "1"})
    assert (status, answer["version"], answer["source"]) == (200, "1", "explicit")
    assert (await score({"tenant": "t1", "rows": rows}, key="wrong"))[0] == 401
    assert (await score({"tenant": "t1", "rows": []}, **{"azureml-model-deployment": "x"}))[
        0
    ] == 404
    status, answer = await score({"tenant": "t9", "rows": []})
    assert status == 404, answer
    assert (await score({"tenant": "t1", "rows": [{"yr": "1"}]}))[0] == 400
    stats = (await v2_stats(emu))["endpoints"]["pool-c"]
    assert stats["deployments"]["scorer"]["scored"] == 5  # the requests its script answered
