"""A classic tenant whose live endpoint is gone (deleted behind retrainq's back, or lost by an
emulator restarted without its state) still retrains in holdout mode: the staging step makes
the live endpoint again with the deployed model, the champion is scored there, and the
candidate that passes is deployed to it."""

from __future__ import annotations

import pytest

from emulator import datagen
from tests.integration.fleet import Fleet
from tests.integration.test_holdout_gate import (
    Api,
    api,
    finished,
    onboard,
    retrain_on,
    served,
    start_workers,
    tenant_of,
)

__all__ = ["api"]  # the API fixture of the holdout gate's tests
pytestmark = pytest.mark.timeout(240)


async def test_a_lost_live_endpoint_is_restored_and_the_champion_scored_on_it(
    fleet: Fleet, api: Api
) -> None:
    """Delete the live endpoint after the first deploy: the next run scores both models and
    deploys; the endpoint serves the new model."""
    start_workers(fleet)
    first = await finished(api, await onboard(fleet, api, "lost", {"holdout": {"label": "cnt"}}))
    assert first["state"] == "succeeded", first["error"]
    tenant = await tenant_of(api, "lost")
    service, live = tenant["target"]["web_service_id"], tenant["endpoint_name"]
    workspace = fleet.config["workspaces"][0]
    url = (
        f"{fleet.emulator_url}/workspaces/{workspace['id']}/webservices/{service}/endpoints/{live}"
    )
    headers = {"Authorization": f"Bearer {workspace['authorization_token']}"}
    async with fleet.http.delete(url, headers=headers) as reply:
        assert reply.status < 300, await reply.text()

    run = await retrain_on(
        fleet, api, "lost", datagen.bike_rental_csv("lost", 300, seed=3, drift=True)
    )
    assert run["state"] == "succeeded", run["error"]
    comparison = run["decision"]["comparison"]
    assert comparison["champion_model"] == first["outputs"]["model_path"]
    assert comparison["champion_metrics"] is not None
    assert run["outputs"]["model_path"] in await served(fleet, service, live)
