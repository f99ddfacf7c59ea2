"""R5: Redis unavailable (SIGSTOP: silent; or stopped and started again: refused) while runs are
in flight. The API (a real ``retrainq-api``) answers every request with 503 + Retry-After within
5 s, never a 500, never a hang; a real worker recovers without a restart within 10 s of Redis
returning, and every run submitted before the outage succeeds after it."""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest

from producer.devtools.processes import ManagedProcess
from tests.integration.conftest_api import ADMIN
from tests.integration.fleet import Fleet, close_fleet, dump, open_fleet, until
from tests.security.support import FULL, ServedApi, report, size
from worker.schemas import Lane, RunState

OUTAGE_SECONDS = size(8, 30)
RUNS = size(4, 12)
API_DEADLINE = 5.0
RECOVERY_TARGET = 10.0

pytestmark = pytest.mark.timeout(600 if FULL else 180)


@pytest.fixture
async def fleet(
    redis_url: str, blob_connection_string: str, emulator_url: str, tmp_path: Path
) -> AsyncIterator[Fleet]:
    """A fleet whose training jobs take a few seconds (so runs are in flight at the outage)."""
    opened = await open_fleet(redis_url, blob_connection_string, emulator_url, tmp_path)
    await opened.emulator("PUT", "/_emulator/faults", {})
    await opened.emulator("PUT", "/_emulator/settings", {"min_job_seconds": 3})
    try:
        yield opened
    finally:
        opened.stop_workers()
        await opened.emulator("PUT", "/_emulator/settings", {"min_job_seconds": 0})
        await close_fleet(opened)


async def _probe(
    http: aiohttp.ClientSession,
    url: str,
    route: tuple[str, str, dict[str, str]],
    returned: asyncio.Event,
) -> list[tuple[str, int, float, bool, str]]:
    """Call one route in a loop until Redis returns.

    Each entry: (route, status, seconds, finished after Redis returned, Retry-After).
    """
    method, path, headers = route
    seen: list[tuple[str, int, float, bool, str]] = []
    while not returned.is_set():
        started = time.monotonic()
        try:
            async with http.request(
                method, url + path, headers=headers, timeout=aiohttp.ClientTimeout(total=30)
            ) as answer:
                await answer.read()
                status, retry_after = answer.status, answer.headers.get("Retry-After", "")
        except TimeoutError:
            status, retry_after = -1, ""
        elapsed = time.monotonic() - started
        seen.append((f"{method} {path}", status, elapsed, returned.is_set(), retry_after))
    return seen


@pytest.mark.parametrize("kind", ["sigstop", "restart"])
async def test_redis_outage_api_503_and_worker_recovers(
    fleet: Fleet,
    redis_server: ManagedProcess,
    served_api: Callable[..., ServedApi],
    kind: str,
) -> None:
    """503 + Retry-After within 5 s during the outage; the worker resumes within 10 s after."""
    api = served_api(**_api_settings(fleet))
    tenants = [await fleet.onboard(f"r5-{i:03d}", rows=120) for i in range(RUNS)]
    tenant_key = await _tenant_key(fleet, api, tenants[0].id)
    late = await fleet.onboard("r5-late", rows=120)
    (worker,) = fleet.start_workers(1)
    run_ids = [await fleet.retrain(t.id, Lane.BULK) for t in tenants]

    async def in_flight() -> bool:
        return bool((await fleet.training_stats())["running_now"] >= 1)

    await until(in_flight, within=60)
    returned = asyncio.Event()
    async with aiohttp.ClientSession() as http:
        if kind == "sigstop":
            redis_server.signal(signal.SIGSTOP)
        else:
            redis_server.stop()
        try:
            routes = [
                ("GET", "/v1/tenants", ADMIN),
                ("POST", "/v1/tenants/r5-000/retrains", ADMIN),
                ("GET", "/v1/tenants/r5-000", {"Authorization": f"Bearer {tenant_key}"}),
                ("GET", "/v1/runs/" + run_ids[0], ADMIN),
                ("GET", "/readyz", {}),
            ]
            probing = asyncio.gather(*(_probe(http, api.url, r, returned) for r in routes))
            await asyncio.sleep(OUTAGE_SECONDS)
        finally:
            if kind == "sigstop":
                redis_server.signal(signal.SIGCONT)
            else:
                redis_server.start(timeout=60)
            back = time.monotonic()
            returned.set()
        seen = [entry for found in await probing for entry in found]
    # The worker was never restarted: recovery is the time until it advances a run created
    # after Redis returned.
    await fleet.redis.ping()
    fresh = await fleet.retrain(late.id)

    async def advanced() -> bool:
        (run,) = await fleet.store.get_runs([fresh])
        return run.state is not RunState.QUEUED

    await until(advanced, within=60)
    recovery = time.monotonic() - back
    runs = await fleet.wait_terminal([*run_ids, fresh], within=120)
    during = [s for s in seen if not s[3]]
    statuses = Counter(f"{route} {status}" for route, status, _, _, _ in during)
    bad = [s for s in during if s[1] != 503 or not s[4] or s[2] > API_DEADLINE]
    worker_alive = worker.proc is not None and worker.proc.poll() is None
    starts = worker.log_path.read_text().count('"worker.ready"')
    report(
        f"R5-{kind}",
        outage_seconds=OUTAGE_SECONDS,
        api_requests_during_outage=len(during),
        api_statuses=dict(statuses),
        api_max_seconds=round(max((s[2] for s in during), default=0), 2),
        api_not_503_or_slow=len(bad),
        api_500s=sum(1 for s in seen if s[1] == 500),
        worker_recovery_seconds=round(recovery, 2),
        worker_restarts=starts - 1,
        runs=len(runs),
        succeeded=sum(r.state is RunState.SUCCEEDED for r in runs),
    )
    assert during, "no request finished during the outage"
    assert bad == [], bad[:5]
    assert not [s for s in seen if s[1] >= 500 and s[1] != 503]
    assert worker_alive
    assert starts == 1
    assert recovery <= RECOVERY_TARGET
    assert all(r.state is RunState.SUCCEEDED for r in runs), dump([r.error for r in runs])


def _api_settings(fleet: Fleet) -> dict[str, str]:
    """The API subprocess on the fleet's container (default Redis timeout: 2 s)."""
    return {"RETRAINQ_BLOB__CONTAINER": "retrainq"}


async def _tenant_key(fleet: Fleet, api: ServedApi, tenant_id: str) -> str:
    """A tenant key for ``tenant_id`` (fleet tenants are stored without one): an onboarded
    sibling's key would see only the sibling, so register one directly."""
    from producer.api.auth import TENANT_KEY_PREFIX, hash_key

    key = TENANT_KEY_PREFIX + "r5-probe-key-0123456789abcdef"
    assert await fleet.store.register_api_key(hash_key(key), tenant_id)
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            f"{api.url}/v1/tenants/{tenant_id}", headers={"Authorization": f"Bearer {key}"}
        ) as ok,
    ):
        assert ok.status == 200, await ok.text()
    return key
