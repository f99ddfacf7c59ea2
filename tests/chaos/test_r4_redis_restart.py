"""R4: Redis is killed with SIGKILL mid-batch and restarted from its AOF.

Runs are accepted one by one (a run is accepted when ``create_run`` returned, i.e. Redis
acknowledged the write — what the API's 202 waits for) while workers advance earlier ones.
Every accepted run must end, with one started BES job, and every worker must carry on.

Redis write()s the AOF before it replies, under every ``appendfsync`` policy, so killing the
*process* loses no acknowledged write with AOF on; the policies differ only when the host
itself dies (power, kernel): ``always`` loses nothing acknowledged, ``everysec`` about the
last second, ``no`` what the kernel had not flushed (up to ~30 s). Both policies are run
here to show the process-kill guarantee; a host crash cannot be staged on this machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from dataclasses import dataclass

import pytest
import redis.exceptions

from producer.devtools.processes import ManagedProcess
from tests.chaos.support import CHAOS_WORKER_SETTINGS, audit, report, sizes, wait_all_terminal
from tests.integration.fleet import Fleet
from worker.schemas import Lane
from worker.store import RunRequest


@dataclass(frozen=True)
class Size:
    """Tenants (one run each), workers, and after how many accepted runs Redis dies."""

    runs: int
    workers: int
    kill_after: int


async def restart(server: ManagedProcess) -> float:
    """SIGKILL redis-server and start it again on the same port and data directory."""
    server.signal(signal.SIGKILL)
    killed = time.monotonic()
    server.stop()
    await asyncio.to_thread(server.start, 60)
    return time.monotonic() - killed


@pytest.mark.parametrize("fsync", ["always", "everysec"])
@pytest.mark.parametrize(
    "size",
    sizes(
        Size(runs=80, workers=3, kill_after=50),
        Size(runs=500, workers=3, kill_after=300),
        bounded_timeout=240,
        full_timeout=1200,
    ),
)
async def test_r4_a_redis_kill_loses_no_acknowledged_run(
    fleet: Fleet, redis_server: ManagedProcess, size: Size, fsync: str
) -> None:
    """Every accepted run ends succeeded with one started job; workers reconnect by themselves."""
    tenant_ids = [f"r4-{i:03d}" for i in range(size.runs)]
    for tenant_id in tenant_ids:
        await fleet.onboard(tenant_id, rows=120)
    await fleet.emulator("PUT", "/_emulator/settings", {"min_job_seconds": 2})
    await fleet.redis.config_set("appendfsync", fsync)
    fleet.start_workers(size.workers, **CHAOS_WORKER_SETTINGS)
    accepted: dict[str, float] = {}
    refused = 0
    outage = 0.0
    started = time.monotonic()
    for index, tenant_id in enumerate(tenant_ids):
        if index == size.kill_after:
            outage = await restart(redis_server)
        try:
            created = await fleet.store.create_run(RunRequest(tenant_id=tenant_id, lane=Lane.BULK))
        except (redis.exceptions.ConnectionError, redis.exceptions.BusyLoadingError):
            refused += 1  # the API would have answered 503: not accepted
            continue
        accepted[created.run_id] = time.monotonic()
        # Accepted but maybe not enqueued: the reconciler finds such a run from its record.
        with contextlib.suppress(redis.exceptions.ConnectionError):
            await fleet.queue.advance(created.run_id, 0)
        await asyncio.sleep(0.02)
    run_ids = list(accepted)
    await wait_all_terminal(fleet, run_ids, within=150)
    seconds = time.monotonic() - started
    result = await audit(fleet, run_ids, [])
    runs = {r.id: r for r in await fleet.store.get_runs(run_ids)}
    missing = [r for r in run_ids if r not in runs]
    alive = sum(1 for w in fleet.workers if w.proc is not None and w.proc.poll() is None)
    report(
        "R4",
        size=size.runs,
        appendfsync=fsync,
        workers=size.workers,
        workers_alive=alive,
        redis_outage_seconds=round(outage, 2),
        refused_during_outage=refused,
        lost_acknowledged=len(missing),
        seconds=round(seconds, 1),
        **result.figures(),
    )
    assert alive == size.workers, "a worker died with Redis instead of reconnecting"
    assert not missing, f"{len(missing)} acknowledged runs vanished with the restart"
    assert result.not_terminal == 0, result
    assert result.double_started == 0, result
    assert result.jobs_started == len(run_ids), result
    assert result.succeeded == len(run_ids), result
