"""One tenant scan serves ``GET /v1/fleet`` for its lifetime, with the window's runs counted
once per scan (not on every answer); a different window scans again."""

from __future__ import annotations

from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestClient

from producer.api.routes_fleet import SCAN_CACHE
from tests.integration import test_views as views
from tests.integration.conftest_api import ADMIN, onboard

pytestmark = pytest.mark.timeout(120)
api_settings = views.api_settings  # an API that knows svc-a and svc-b


async def fleet(api: TestClient[web.Request, web.Application], hours: int) -> dict[str, Any]:
    """The ``/v1/fleet`` body for a window of ``hours``."""
    response = await api.get(f"/v1/fleet?hours={hours}", headers=ADMIN)
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    return body


async def test_a_cached_scan_counts_its_runs_once_and_another_window_scans_again(
    api: TestClient[web.Request, web.Application], redis: aioredis.Redis
) -> None:
    """Answers served by one scan share its counted runs (a run created since is not in
    them); asking another window reads the fleet again and counts the new run."""
    await onboard(api, "tenant-a", data_path="data/tenant-a/a.csv", training_service="svc-a")
    first = await fleet(api, 24)
    cache = api.app[SCAN_CACHE]
    cache.ttl = 3600.0  # the scan serves on, however slow the machine is
    counted = cache.runs[24]
    await onboard(api, "tenant-b", data_path="data/tenant-b/b.csv", training_service="svc-a")
    second = await fleet(api, 24)
    assert cache.runs[24] is counted
    assert second["runs_by_state"] == first["runs_by_state"] == {"queued": 1}
    assert second["tenants"]["total"] == 1
    other = await fleet(api, 23)  # another window start: a new scan
    assert cache.runs.keys() == {23}
    assert other["runs_by_state"] == {"queued": 2}
    assert (other["tenants"]["total"], other["tenants"]["complete"]) == (2, True)
