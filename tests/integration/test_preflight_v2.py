"""Onboarding preflight of tenants on Azure ML v2 training services, against the emulator:
their workspace and datastore are checked, and global parameters refused."""

from __future__ import annotations

from typing import Any

import pytest

from producer.api.settings import ApiSettings
from producer.devtools.devstack import fetch_emulator_config
from producer.devtools.emulated import predictive_service_ids
from tests.azureml_v2 import v2_settings
from tests.integration.conftest_api import ADMIN, ApiTestClient
from tests.integration.test_doctor_v2 import register
from tests.integration.test_preflight import RESOURCE, _create, _mismatch, _settings

CONTAINER = "api-tests"  # the API tests' blob container


@pytest.fixture
def api_settings(redis_url: str, blob_connection_string: str, emulator_url: str) -> ApiSettings:
    """The API with its preflight on the emulator and three v2 services: one whose datastore
    is on the runs' container, one whose datastore does not exist, one on another container."""
    register(emulator_url, "pfstore", blob_connection_string, CONTAINER)
    register(emulator_url, "pfother", blob_connection_string, "elsewhere")
    base = _settings(redis_url, blob_connection_string, emulator_url)
    arm = fetch_emulator_config(emulator_url)["arm"]
    services = {n: s.model_dump(mode="python") for n, s in base.training_services.items()}
    for name, datastore in (("v2", "pfstore"), ("v2missing", "pfnone"), ("v2other", "pfother")):
        v2 = v2_settings(arm["subscription_id"], arm["resource_groups"][0], datastore)
        services[name] = {"backend": "azureml_v2", "azureml_v2": v2}
    return ApiSettings.model_validate(
        {**base.model_dump(mode="python"), "training_services": services}
    )


def tenant(config: dict[str, Any], tenant_id: str, service: str, **fields: Any) -> dict[str, Any]:
    """A tenant on ``service`` with the bike-rental classic target."""
    scoring = predictive_service_ids(config)["bike-rental"]
    target = {"kind": "classic", "web_service_id": scoring, "resource_name": RESOURCE}
    return {"id": tenant_id, "target": target, "training_service": service, **fields}


async def test_a_v2_service_with_its_datastore_in_place_onboards_verified(
    api: ApiTestClient, emulator_url: str
) -> None:
    """The workspace and the datastore on the runs' container pass; the checks say so."""
    config = fetch_emulator_config(emulator_url)
    answer = await _create(api, tenant(config, "pfv2", "v2"))
    assert answer.status == 201, await answer.text()
    assert (await answer.json())["tenant"]["verified"] is True
    shown = await (await api.get("/v1/tenants/pfv2", headers=ADMIN)).json()
    assert shown["verified"] is True


async def test_v2_services_that_cannot_train_the_tenant_are_422(
    api: ApiTestClient, emulator_url: str
) -> None:
    """Global parameters on a v2 service; a datastore that does not exist; a datastore on a
    container the runs do not use: each is a 422 naming the field."""
    config = fetch_emulator_config(emulator_url)
    body = tenant(config, "pfparams", "v2", global_parameters={"Learning rate": "0.1"})
    problem = await _mismatch(await _create(api, body), "global_parameters")
    assert "takes no global parameters" in problem["detail"]
    problem = await _mismatch(
        await _create(api, tenant(config, "pfnone", "v2missing")), "training_service"
    )
    assert "datastore" in problem["detail"]
    problem = await _mismatch(
        await _create(api, tenant(config, "pfother", "v2other")), "training_service"
    )
    assert (problem["found"], CONTAINER in problem["detail"]) == ("elsewhere", True)
