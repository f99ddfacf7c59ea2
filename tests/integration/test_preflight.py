"""Onboarding preflight against the emulator: targets that do not exist or fit are 422."""

from __future__ import annotations

from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient, TestServer

from producer.api.app import create_app
from producer.api.settings import ApiSettings
from producer.devtools.devstack import fetch_emulator_config
from producer.devtools.emulated import predictive_service_ids, training_services
from producer.devtools.processes import free_port
from tests.integration.conftest_api import ADMIN, ApiTestClient, make_settings

RESOURCE = "Bike Rental [trained model]"


def _settings(redis_url: str, blob: str, emulator_url: str, **azureml: str) -> ApiSettings:
    config = fetch_emulator_config(emulator_url)
    workspace, arm = config["workspaces"][0], config["arm"]
    return make_settings(
        redis_url,
        blob,
        preflight=True,
        training_services=training_services(config, emulator_url),
        azureml={
            "management_url": emulator_url,
            "arm_url": emulator_url,
            "workspace_id": workspace["id"],
            "workspace_token": workspace["authorization_token"],
            "subscription_id": arm["subscription_id"],
            "resource_group": arm["resource_groups"][0],
            "arm_token": arm["token"],
            "request_timeout_seconds": 2,
            **azureml,
        },
    )


@pytest.fixture
def config(emulator_url: str) -> dict[str, Any]:
    """The emulator's configuration (ids and keys)."""
    return fetch_emulator_config(emulator_url)


@pytest.fixture
def api_settings(redis_url: str, blob_connection_string: str, emulator_url: str) -> ApiSettings:
    """The API with its preflight pointed at the emulator."""
    return _settings(redis_url, blob_connection_string, emulator_url)


def _service(config: dict[str, Any], name: str) -> str:
    services = config["workspaces"][0]["web_services"]
    return str(next(s["id"] for s in services if s["name"] == name))


async def _create(api: ApiTestClient, body: dict[str, Any], query: str = "") -> Any:
    return await api.post(f"/v1/tenants{query}", json={"train": False, **body}, headers=ADMIN)


async def _mismatch(answer: Any, field: str) -> dict[str, Any]:
    assert answer.status == 422, await answer.text()
    problem: dict[str, Any] = await answer.json()
    assert (problem["code"], problem["field"]) == ("preflight_mismatch", field), problem
    return problem


async def test_a_target_that_fits_is_onboarded_verified(
    api: ApiTestClient, config: dict[str, Any]
) -> None:
    """Classic and new targets of the emulator's bike-rental services pass every check."""
    scoring = predictive_service_ids(config)["bike-rental"]
    classic = {"kind": "classic", "web_service_id": scoring, "resource_name": RESOURCE}
    answer = await _create(api, {"id": "fits", "target": classic})
    assert answer.status == 201, await answer.text()
    assert (await answer.json())["tenant"]["verified"] is True
    new = {"kind": "new", "template_service": "bike-rental-template"}
    answer = await _create(api, {"id": "fits-new", "target": new})
    assert answer.status == 201, await answer.text()
    shown = await (await api.get("/v1/tenants/fits-new", headers=ADMIN)).json()
    assert shown["verified"] is True


async def test_targets_that_do_not_exist_or_fit_are_422_and_store_nothing(
    api: ApiTestClient, config: dict[str, Any], redis: aioredis.Redis
) -> None:
    """Unknown service, unknown resource, a training service, another schema, no template."""
    scoring = predictive_service_ids(config)["bike-rental"]
    cases = [
        ({"web_service_id": "0" * 32, "resource_name": RESOURCE}, "target.web_service_id"),
        (
            {"web_service_id": scoring, "resource_name": "Nope [trained model]"},
            "target.resource_name",
        ),
        (
            {"web_service_id": _service(config, "Bike Rental Training"), "resource_name": RESOURCE},
            "target.web_service_id",
        ),
        (
            {"web_service_id": predictive_service_ids(config)["churn"], "resource_name": RESOURCE},
            "target.resource_name",
        ),
    ]
    for target, field in cases:
        body = {"id": "bad", "target": {"kind": "classic", **target}}
        problem = await _mismatch(await _create(api, body), field)
        assert problem["found"], problem
    problem = await _mismatch(
        await _create(api, {"id": "bad", "target": {"kind": "new", "template_service": "nope"}}),
        "target.template_service",
    )
    assert "nope" in problem["detail"]
    assert "bike-rental-template" in problem["found"]
    assert await redis.keys("retrainq:tenant:*") == []


async def test_a_scoring_service_of_another_schema_is_422(
    api: ApiTestClient, config: dict[str, Any]
) -> None:
    """The churn scoring service (its resource named like bike rental's) takes other inputs."""
    churn = predictive_service_ids(config)["churn"]
    services = config["workspaces"][0]["web_services"]
    model = next(s["model"] for s in services if s["id"] == churn)
    spec = next(m for m in config["models"] if m["name"] == model)
    body = {
        "id": "schema",
        "target": {
            "kind": "classic",
            "web_service_id": churn,
            "resource_name": spec["resource_name"],
        },
    }
    problem = await _mismatch(await _create(api, body), "target.web_service_id")
    assert "does not train on" in problem["detail"]
    assert problem["found"]["training_columns"]


async def test_global_parameters_the_training_service_does_not_declare_are_422(
    api: ApiTestClient, config: dict[str, Any]
) -> None:
    """``Alpha`` is not a parameter of the bike-rental training service; ``URI`` is."""
    scoring = predictive_service_ids(config)["bike-rental"]
    target = {"kind": "classic", "web_service_id": scoring, "resource_name": RESOURCE}
    body = {"id": "params", "target": target, "global_parameters": {"Alpha": "1"}}
    problem = await _mismatch(await _create(api, body), "global_parameters")
    assert "URI" in problem["found"]


async def test_a_patch_of_the_target_is_checked_too(
    api: ApiTestClient, config: dict[str, Any]
) -> None:
    """PATCH to an unknown service is 422 and the tenant keeps its target."""
    scoring = predictive_service_ids(config)["bike-rental"]
    target = {"kind": "classic", "web_service_id": scoring, "resource_name": RESOURCE}
    assert (await _create(api, {"id": "patched", "target": target})).status == 201
    bad = {**target, "web_service_id": "f" * 32}
    answer = await api.patch("/v1/tenants/patched", json={"target": bad}, headers=ADMIN)
    await _mismatch(answer, "target.web_service_id")
    shown = await (await api.get("/v1/tenants/patched", headers=ADMIN)).json()
    assert shown["target"]["web_service_id"] == scoring


async def test_an_unreachable_remote_is_503_unless_verify_is_false(
    redis: aioredis.Redis,
    redis_url: str,
    blob_connection_string: str,
    emulator_url: str,
    config: dict[str, Any],
) -> None:
    """No silent accept: 503 + Retry-After; ?verify=false onboards it as not verified."""
    closed = f"http://127.0.0.1:{free_port()}"
    settings = _settings(
        redis_url, blob_connection_string, emulator_url, management_url=closed, arm_url=closed
    )
    scoring = predictive_service_ids(config)["bike-rental"]
    target = {"kind": "classic", "web_service_id": scoring, "resource_name": RESOURCE}
    async with TestClient(TestServer(create_app(settings))) as api:
        answer = await _create(api, {"id": "offline", "target": target})
        assert answer.status == 503, await answer.text()
        assert int(answer.headers["Retry-After"]) >= 1
        assert await redis.keys("retrainq:tenant:*") == []
        answer = await _create(api, {"id": "offline", "target": target}, "?verify=false")
        assert answer.status == 201, await answer.text()
        assert (await answer.json())["tenant"]["verified"] is False
        shown = await (await api.get("/v1/tenants/offline", headers=ADMIN)).json()
        assert shown["verified"] is False


async def test_only_an_admin_may_skip_the_preflight(
    api: ApiTestClient, config: dict[str, Any]
) -> None:
    """A tenant key changing its target with ?verify=false is 403; without it, checked."""
    scoring = predictive_service_ids(config)["bike-rental"]
    target = {"kind": "classic", "web_service_id": scoring, "resource_name": RESOURCE}
    created = await (await _create(api, {"id": "self", "target": target})).json()
    own = {"Authorization": f"Bearer {created['api_key']}"}
    bad = {"target": {**target, "web_service_id": "e" * 32}}
    answer = await api.patch("/v1/tenants/self?verify=false", json=bad, headers=own)
    assert answer.status == 403, await answer.text()
    answer = await api.patch("/v1/tenants/self", json=bad, headers=own)
    await _mismatch(answer, "target.web_service_id")
