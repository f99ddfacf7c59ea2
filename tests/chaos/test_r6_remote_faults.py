"""R6: network faults (latency, resets, dropped replies) and 429/503 bursts on every remote call.

Workers reach the emulator only through an in-process fault proxy; the emulator adds its own
throttling bursts and commit-then-drop replies. Every fault here is shorter than the retry
budget (``step_max_failures`` backoffs), so every run must succeed, and no run may ever have
two started BES jobs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from urllib.parse import urlsplit

import pytest

from producer.devtools.emulated import worker_env
from tests.chaos.proxy import FaultProxy, ProxyFaults
from tests.chaos.support import CHAOS_WORKER_SETTINGS, audit, errors_of, report, sizes
from tests.integration.fleet import Fleet
from worker.schemas import Lane


@dataclass(frozen=True)
class Size:
    """Tenants (one run each; every fifth on a new ARM service) and workers."""

    tenants: int
    workers: int


# Bursts: fail_next N answers N 429/503s in a row on that surface, then recovers.
EMULATOR_FAULTS = {
    "bes_submit": {"error_rate": 0.05, "error_status": 503, "commit_then_drop": 4},
    "bes_start": {"fail_next": 6, "error_status": 429, "commit_then_drop": 3},
    "bes_status": {"fail_next": 10, "error_status": 503, "error_rate": 0.05},
    "management": {"fail_next": 4, "error_status": 429, "commit_then_drop": 3},
    "arm": {"fail_next": 3, "error_status": 503, "commit_then_drop": 2},
}
PROXY_FAULTS = ProxyFaults(latency=0.05, reset_rate=0.05, drop_reply_rate=0.05)


@pytest.fixture
async def proxy(emulator_url: str) -> AsyncIterator[FaultProxy]:
    """A fault proxy in front of the emulator."""
    target = urlsplit(emulator_url)
    opened = FaultProxy(target.hostname or "127.0.0.1", target.port or 80, PROXY_FAULTS)
    await opened.start()
    yield opened
    await opened.close()


@pytest.mark.parametrize(
    "size",
    sizes(
        Size(tenants=40, workers=2),
        Size(tenants=300, workers=3),
        bounded_timeout=240,
        full_timeout=1200,
    ),
)
async def test_r6_faults_shorter_than_the_retry_budget_fail_no_run_and_start_no_job_twice(
    fleet: Fleet, proxy: FaultProxy, size: Size
) -> None:
    """All runs succeed through resets, dropped replies and throttling; one start per run."""
    tenant_ids = [f"r6-{i:03d}" for i in range(size.tenants)]
    for index, tenant_id in enumerate(tenant_ids):
        await fleet.onboard(tenant_id, "new" if index % 5 == 4 else "classic", rows=120)
    await fleet.emulator("PUT", "/_emulator/settings", {"min_job_seconds": 1})
    await fleet.emulator("PUT", "/_emulator/faults", EMULATOR_FAULTS)
    through_proxy = {**worker_env(fleet.config, proxy.url), **CHAOS_WORKER_SETTINGS}
    await asyncio.to_thread(fleet.start_workers, size.workers, **through_proxy)
    started = time.monotonic()
    run_ids = [await fleet.retrain(t, Lane.BULK) for t in tenant_ids]
    await fleet.wait_terminal(run_ids, within=200)
    seconds = time.monotonic() - started
    result = await audit(fleet, run_ids, tenant_ids)
    injected = await fleet.emulator("GET", "/_emulator/faults")
    runs = await fleet.store.get_runs(run_ids)
    report(
        "R6",
        size=size.tenants,
        workers=size.workers,
        seconds=round(seconds, 1),
        proxy=asdict(proxy.stats),
        emulator_faults={k: v for k, v in injected.items() if k in ("injected", "dropped")},
        orphaned_submissions=sum(r.orphaned_submissions for r in runs),
        **result.figures(),
    )
    assert proxy.stats.resets, "the proxy reset no connection"
    assert proxy.stats.dropped_replies, "the proxy dropped no reply"
    assert result.double_started == 0, result
    assert result.jobs_started == len(run_ids), result
    assert result.failed == 0, errors_of(runs)
    assert result.succeeded == len(run_ids), errors_of(runs)
    assert result.stale_endpoints == 0, result
