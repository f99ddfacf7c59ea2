"""Pure helpers over ARM web service definitions: parse, runtime base, model swap, tenant copy."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from pydantic import SecretStr

from worker.azureml.arm import (
    ProvisioningState,
    definition_for_tenant,
    parse_web_service,
    runtime_base,
    trained_model_asset,
    with_trained_model,
)
from worker.azureml.errors import PermanentError

PROVIDER = "Microsoft.MachineLearning"
SWAGGER = (
    "https://ussouthcentral.services.azureml.net/subscriptions/sub/services/abc123/swagger.json"
)


def _template() -> dict[str, Any]:
    return {
        "id": f"/subscriptions/sub/resourceGroups/rg/providers/{PROVIDER}/webServices/tpl",
        "name": "tpl",
        "location": "South Central US",
        "type": "Microsoft.MachineLearning/webServices",
        "tags": {"team": "ml"},
        "properties": {
            "title": "Bike Rental [Predictive Exp.]",
            "description": "template",
            "provisioningState": "Succeeded",
            "createdOn": "2017-01-01T00:00:00Z",
            "modifiedOn": "2017-01-02T00:00:00Z",
            "swaggerLocation": SWAGGER,
            "packageType": "Graph",
            "storageAccount": {"name": "acct"},
            "machineLearningWorkspace": {"id": "ws"},
            "commitmentPlan": {"id": "/subscriptions/sub/.../commitmentPlans/plan"},
            "realtimeConfiguration": {"maxConcurrentCalls": 4},
            "input": {"type": "object"},
            "output": {"type": "object"},
            "parameters": {},
            "assets": {
                "asset1": {
                    "name": "Bike Rental data",
                    "type": "Module",
                    "locationInfo": {"uri": "a"},
                },
                "asset3": {
                    "name": "Bike Rental [trained model]",
                    "type": "Resource",
                    "locationInfo": {"uri": "https://acct.blob.core.windows.net/c/old.ilearner"},
                },
            },
            "package": {
                "nodes": {"node1": {"assetId": "asset3"}},
                "edges": [],
                "graphParameters": {},
            },
        },
    }


def test_parse_keeps_state_swagger_and_the_whole_body() -> None:
    """GET bodies become WebService with the full definition preserved."""
    service = parse_web_service(_template())
    assert service.name == "tpl"
    assert service.provisioning_state is ProvisioningState.SUCCEEDED
    assert service.definition == _template()


@pytest.mark.parametrize(
    ("raw", "state"),
    [
        ("Provisioning", ProvisioningState.PROVISIONING),
        ("Failed", ProvisioningState.FAILED),
        ("Deleting", ProvisioningState.UNKNOWN),
        (None, ProvisioningState.UNKNOWN),
    ],
)
def test_unknown_provisioning_states_read_as_unknown(
    raw: str | None, state: ProvisioningState
) -> None:
    """States outside the documented four are not errors, just Unknown."""
    body = _template()
    body["properties"]["provisioningState"] = raw
    assert parse_web_service(body).provisioning_state is state


@pytest.mark.parametrize("payload", [None, [], {"name": "x"}, {"properties": {}}, "svc"])
def test_parse_rejects_what_is_not_a_web_service(payload: object) -> None:
    """Bodies without name and properties are permanent errors."""
    with pytest.raises(PermanentError, match="unexpected response"):
        parse_web_service(payload)


def test_runtime_base_is_swagger_location_without_the_file() -> None:
    """BES and RRS live under swaggerLocation minus /swagger.json."""
    service = parse_web_service(_template())
    assert runtime_base(service) == (
        "https://ussouthcentral.services.azureml.net/subscriptions/sub/services/abc123"
    )
    body = _template()
    body["properties"]["swaggerLocation"] = (
        "http://127.0.0.1:8080/subscriptions/s/services/x/swagger.json?v=1"
    )
    assert (
        runtime_base(parse_web_service(body)) == "http://127.0.0.1:8080/subscriptions/s/services/x"
    )


def test_runtime_base_needs_a_swagger_location() -> None:
    """A service that does not say where it runs is a permanent error."""
    body = _template()
    del body["properties"]["swaggerLocation"]
    with pytest.raises(PermanentError, match="no swaggerLocation"):
        runtime_base(parse_web_service(body))


def test_with_trained_model_rewrites_only_that_asset() -> None:
    """The [trained model] Resource gets the new uri and SAS; nothing else changes."""
    original = _template()
    updated = with_trained_model(
        original,
        "https://acct.blob.core.windows.net/c/models/t/r2.ilearner",
        SecretStr("?sv=1&sig=s"),
    )
    assert updated["properties"]["assets"]["asset3"]["locationInfo"] == {
        "uri": "https://acct.blob.core.windows.net/c/models/t/r2.ilearner",
        "credentials": "?sv=1&sig=s",
    }
    expected = _template()
    expected["properties"]["assets"]["asset3"] = updated["properties"]["assets"]["asset3"]
    assert updated == expected
    assert original == _template(), "the input definition is not mutated"


def test_with_trained_model_without_sas_sets_only_the_uri() -> None:
    """Without a SAS the location is the bare uri."""
    updated = with_trained_model(_template(), "https://x/c/m.ilearner")
    assert updated["properties"]["assets"]["asset3"]["locationInfo"] == {
        "uri": "https://x/c/m.ilearner"
    }


def test_definition_without_trained_model_is_refused() -> None:
    """A training service (no trained-model resource) cannot be retargeted."""
    body = _template()
    del body["properties"]["assets"]["asset3"]
    with pytest.raises(PermanentError, match="no trained-model assets") as caught:
        with_trained_model(body, "https://x/m.ilearner")
    assert caught.value.code == "NoTrainedModelAsset"
    body["properties"]["assets"] = None
    with pytest.raises(PermanentError):
        trained_model_asset(body)


def test_two_trained_models_are_ambiguous() -> None:
    """Two candidate assets are refused rather than guessed between."""
    body = _template()
    body["properties"]["assets"]["asset4"] = copy.deepcopy(body["properties"]["assets"]["asset3"])
    with pytest.raises(PermanentError, match="2 trained-model assets"):
        with_trained_model(body, "https://x/m.ilearner")


def test_tenant_definition_drops_read_only_fields_and_renames() -> None:
    """The copy has the new name and title, no id or read-only properties, the rest kept."""
    body = definition_for_tenant(
        _template(),
        "retrainq-acme",
        tags={"tenant": "acme"},
        storage_account_key=SecretStr("STORAGEKEY"),
    )
    assert "id" not in body
    assert body["name"] == "retrainq-acme"
    assert body["location"] == "South Central US"
    assert body["type"] == "Microsoft.MachineLearning/webServices"
    assert body["tags"] == {"team": "ml", "tenant": "acme"}
    properties = body["properties"]
    for read_only in ("provisioningState", "createdOn", "modifiedOn", "swaggerLocation"):
        assert read_only not in properties
    assert properties["title"] == "retrainq-acme"
    assert properties["description"] == "template"
    assert properties["storageAccount"] == {"name": "acct", "key": "STORAGEKEY"}
    for kept in ("commitmentPlan", "machineLearningWorkspace", "package", "assets", "packageType"):
        assert properties[kept] == _template()["properties"][kept]


def test_tenant_definition_composes_with_the_model_swap() -> None:
    """Create body for a new tenant = template copy + the tenant's trained model."""
    body = with_trained_model(
        definition_for_tenant(_template(), "svc-t1", title="Tenant t1", description="t1"),
        "https://acct/c/models/t1/r1.ilearner",
    )
    assert body["properties"]["title"] == "Tenant t1"
    assert body["properties"]["description"] == "t1"
    assert body["properties"]["assets"]["asset3"]["locationInfo"]["uri"].endswith("r1.ilearner")
    assert "key" not in body["properties"]["storageAccount"]
