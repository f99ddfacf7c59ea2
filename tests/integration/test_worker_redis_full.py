"""Workers on a Redis that refuses writes (maxmemory reached): they pause, say so once a
minute, fail no run, and go on by themselves once Redis has room again."""

from __future__ import annotations

import asyncio
import time

from structlog.testing import capture_logs

from tests.integration.fleet import Fleet
from worker.run.model import RunState
from worker.store import RunRequest

FULL_FOR_SECONDS = 6.0


async def test_a_full_redis_pauses_the_workers_without_failing_a_run(fleet: Fleet) -> None:
    """A step due while Redis is full leaves its run as it was and the worker running, with
    one ``worker.redis_full`` line; with room again, the run goes on to its end."""
    tenant = await fleet.onboard("full")
    (worker,) = fleet.run_workers(1)
    deadline = time.monotonic() + 30
    while not await fleet.redis.zcard(fleet.store.keys.workers):
        assert time.monotonic() < deadline, "the worker did not start"
        await asyncio.sleep(0.1)
    created = await fleet.store.create_run(RunRequest(tenant_id=tenant.id))
    await fleet.queue.advance(created.run_id, 0, 1.0)
    used = int((await fleet.redis.info("memory"))["used_memory"])
    with capture_logs() as logs:
        await fleet.redis.config_set("maxmemory", used - 256 * 1024)
        try:
            await asyncio.sleep(FULL_FOR_SECONDS)
            run = await fleet.store.get_run(created.run_id)
        finally:
            await fleet.redis.config_set("maxmemory", 0)
        assert run is not None
        assert run.state is RunState.QUEUED, run.state
        assert not worker.task.done(), "the worker stopped on a full Redis"
        ended = await fleet.wait_terminal([created.run_id], within=60)
    assert ended[0].state is RunState.SUCCEEDED, ended[0].error
    full = [line for line in logs if line["event"] == "worker.redis_full"]
    assert len(full) == 1, full
    noisy = [line for line in logs if line.get("log_level") in ("error", "critical")]
    assert noisy == [], noisy[:3]
