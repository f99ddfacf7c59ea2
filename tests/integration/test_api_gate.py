"""The gate's evaluation mode through the API: new tenants are judged on a holdout unless
their gate says otherwise, a PATCHed gate keeps the mode it does not name, and a gate stored
before the field existed reads as ``reported``."""

from __future__ import annotations

import json

from tests.integration.conftest_api import ADMIN, ApiTestClient, onboard
from worker.schemas import Tenant


async def gate_of(api: ApiTestClient, tenant_id: str) -> dict[str, object]:
    """The tenant's gate as the API shows it."""
    body = await (await api.get(f"/v1/tenants/{tenant_id}", headers=ADMIN)).json()
    gate: dict[str, object] = body["gate"]
    return gate


async def test_new_tenants_are_judged_on_a_holdout_unless_told_otherwise(
    api: ApiTestClient,
) -> None:
    """No gate, or a gate without ``evaluation``: holdout (with its defaults); asked: reported."""
    created = await onboard(api, "plain")
    assert created["tenant"]["gate"]["evaluation"] == "holdout"
    assert created["tenant"]["gate"]["holdout"] == {
        "fraction": 0.2,
        "min_rows": 30,
        "time_column": None,
        "label": None,
    }
    await onboard(api, "metric", gate={"metric": "AUC"})
    assert (await gate_of(api, "metric"))["evaluation"] == "holdout"
    await onboard(api, "asked", gate={"evaluation": "reported"})
    assert (await gate_of(api, "asked"))["evaluation"] == "reported"


async def test_a_patched_gate_keeps_the_mode_it_does_not_name(api: ApiTestClient) -> None:
    """Changing the metric keeps holdout; naming the mode changes it; bad settings are 422."""
    await onboard(api, "t1")
    patched = await api.patch(
        "/v1/tenants/t1", json={"gate": {"metric": "Mean Absolute Error"}}, headers=ADMIN
    )
    assert patched.status == 200, await patched.text()
    assert (await gate_of(api, "t1"))["evaluation"] == "holdout"
    body = {"gate": {"evaluation": "reported", "max_regression_absolute": 0.05}}
    assert (await api.patch("/v1/tenants/t1", json=body, headers=ADMIN)).status == 200
    gate = await gate_of(api, "t1")
    assert (gate["evaluation"], gate["max_regression_absolute"]) == ("reported", 0.05)
    await onboard(api, "t2", gate={"metric": "AUC"})
    assert (await api.patch("/v1/tenants/t2", json={"gate": None}, headers=ADMIN)).status == 200
    default = await gate_of(api, "t2")
    assert (default["metric"], default["evaluation"]) == ("Coefficient of Determination", "holdout")
    for bad in ({"confidence": 1.5}, {"resamples": 10}, {"holdout": {"fraction": 1}}):
        answer = await api.patch("/v1/tenants/t1", json={"gate": bad}, headers=ADMIN)
        assert answer.status == 422, bad


def test_a_gate_stored_without_the_field_reads_as_reported() -> None:
    """Records written before holdout mode existed keep meaning what they meant."""
    legacy = {
        "id": "old",
        "target": {"kind": "classic", "web_service_id": "s", "resource_name": "r"},
        "gate": {"metric": "Coefficient of Determination", "max_regression": 0.1},
    }
    tenant = Tenant.model_validate_json(json.dumps(legacy))
    assert tenant.gate is not None
    assert tenant.gate.evaluation == "reported"
