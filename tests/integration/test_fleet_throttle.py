"""Throttling made visible: a training service's throttle state and per-endpoint slots on
``/v1/fleet`` and the worker's gauge, a retrying run's last error, after real 429s."""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from producer.api.app import create_app
from producer.devtools.emulated import worker_env
from tests.integration import test_views as views
from tests.integration.conftest_api import ADMIN, make_settings, onboard
from tests.integration.fleet import Fleet, until
from worker.runtime import WorkerContext, sample_gauges
from worker.schemas import RunState

pytestmark = pytest.mark.timeout(180)
# The views tests' fixtures: an API and a worker context that know svc-a and svc-b.
api_settings = views.api_settings
worker_ctx = views.worker_ctx


async def test_the_fleet_and_the_gauge_show_a_throttled_service_and_its_endpoints(
    api: TestClient[web.Request, web.Application], redis: aioredis.Redis, worker_ctx: WorkerContext
) -> None:
    """A throttle key on svc-b: ``/v1/fleet`` says throttled with the seconds left, the
    gauge reads 1 for svc-b and 0 for svc-a; slots in use are shown per endpoint."""
    await onboard(api, "tenant-a", data_path="data/tenant-a/a.csv", training_service="svc-a")
    await views.seed(redis)  # svc-b throttled for ten minutes
    fleet: dict[str, Any] = await (await api.get("/v1/fleet", headers=ADMIN)).json()
    await sample_gauges(worker_ctx)
    services = {service["name"]: service for service in fleet["services"]}
    assert (services["svc-a"]["throttled"], services["svc-a"]["throttle_seconds_left"]) == (
        False,
        None,
    )
    assert services["svc-b"]["throttled"] is True
    assert 590 < services["svc-b"]["throttle_seconds_left"] <= 600
    assert services["svc-a"]["endpoints"] == [
        {"index": 0, "slots_in_use": 1, "max_concurrent_jobs": 2},
        {"index": 1, "slots_in_use": 1, "max_concurrent_jobs": 2},
    ]
    assert views.gauge("retrainq_service_throttled", service="svc-a") == 0
    assert views.gauge("retrainq_service_throttled", service="svc-b") == 1


async def test_a_burst_of_429s_shows_as_a_throttled_service_and_a_retrying_run(
    fleet: Fleet,
) -> None:
    """Every BES submit answers 429 three times: while the run retries, ``/v1/fleet`` says
    the service is throttled and the run shows the 429 as its last error, its failed tries
    and its next try; the run then succeeds after exactly those three refusals."""
    await fleet.emulator(
        "PUT", "/_emulator/faults", {"bes_submit": {"fail_next": 3, "error_status": 429}}
    )
    services = json.loads(
        worker_env(fleet.config, fleet.emulator_url)["RETRAINQ_TRAINING_SERVICES"]
    )
    settings = make_settings(
        fleet.redis_url, fleet.blob_connection_string, training_services=services
    )
    tenant = await fleet.onboard("throttled")
    fleet.run_workers(1)
    run_id = await fleet.retrain(tenant.id)
    seen: dict[str, Any] = {}
    async with TestClient(TestServer(create_app(settings))) as api:

        async def throttle_and_retry_seen() -> bool:
            body = await (await api.get("/v1/fleet", headers=ADMIN)).json()
            for service in body["services"]:
                if service["throttled"]:
                    seen["service"] = service
            run = await (await api.get(f"/v1/runs/{run_id}", headers=ADMIN)).json()
            if run["last_error"] and not RunState(run["state"]).terminal:
                seen["run"] = run
            return {"service", "run"} <= seen.keys()

        await until(throttle_and_retry_seen, within=60, every=0.05)
    assert 0 <= seen["service"]["throttle_seconds_left"] <= 1  # the emulator's Retry-After
    retrying = seen["run"]
    assert "429" in retrying["last_error"], retrying["last_error"]
    assert retrying["step_failures"] >= 1
    assert retrying["next_attempt_at"] is not None
    (ended,) = await fleet.wait_terminal([run_id], within=90)
    assert ended.state is RunState.SUCCEEDED, ended.error
    faults = await fleet.emulator("GET", "/_emulator/faults")
    assert faults["remaining"]["bes_submit"]["fail_next"] == 0
    assert faults["injected"]["bes_submit"] == 3
