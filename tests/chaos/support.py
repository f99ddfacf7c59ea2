"""Shared pieces of the chaos tests: sizes, worker kills, the audit of outcomes, reporting."""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import os
import signal
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import pytest

from producer.devtools.processes import ManagedProcess
from tests.integration.fleet import Fleet, started_twice
from worker.schemas import ClassicTarget, Run, RunState
from worker.settings import WorkerSettings

FULL = os.environ.get("RETRAINQ_CHAOS_FULL") == "1"

DEFAULT_EMULATOR_SETTINGS = {
    "min_job_seconds": 0,
    "instant": False,
    "provisioning_delay_seconds": 0.5,
}

# Worker settings of the chaos fleets. A killed worker's step re-runs when arq's in-progress
# key expires: the largest job timeout + 10 s (see R3 in docs/RELIABILITY.md). The fleets run
# with the default job timeout, so R3 measures what ships.
JOB_TIMEOUT = str(WorkerSettings.model_fields["job_timeout_seconds"].default)
CHAOS_WORKER_SETTINGS = {
    "RETRAINQ_JOB_TIMEOUT_SECONDS": JOB_TIMEOUT,
    "RETRAINQ_AZUREML__REQUEST_TIMEOUT_SECONDS": "3",
    "RETRAINQ_RECONCILE_GRACE_SECONDS": "2",
    "RETRAINQ_THROTTLE_PAUSE_SECONDS": "0.5",
}


def sizes(bounded: Any, full: Any, *, bounded_timeout: int, full_timeout: int) -> list[Any]:
    """The one size a chaos test runs at: bounded in ``make test``, full in ``make chaos``."""
    if FULL:
        return [pytest.param(full, id="full", marks=pytest.mark.timeout(full_timeout))]
    return [pytest.param(bounded, id="bounded", marks=pytest.mark.timeout(bounded_timeout))]


def report(test: str, **figures: object) -> dict[str, object]:
    """Print the figures of a test as one JSON line (and append it to $RETRAINQ_CHAOS_REPORT)."""
    summary = {"test": test, **figures}
    line = json.dumps(summary, default=str)
    print(f"\nCHAOS {line}", flush=True)
    target = os.environ.get("RETRAINQ_CHAOS_REPORT")
    if target:
        with open(target, "a", encoding="utf-8") as out:
            out.write(line + "\n")
    return summary


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (nearest rank) of ``values``; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


async def kill_and_restart(worker: ManagedProcess) -> None:
    """SIGKILL a worker process and start it again (same command line and log)."""
    worker.signal(signal.SIGKILL)
    worker.stop()  # reaps the killed process and closes its log
    await asyncio.to_thread(worker.start, 60)


@dataclass
class Audit:
    """What a batch of runs came to, from the run records, the tenants and the emulator."""

    runs: int
    lost: int
    not_terminal: int
    missing: int
    failed: int
    succeeded: int
    double_started: int
    jobs_started: int
    jobs_created: int
    backward_deploys: int
    stale_endpoints: int
    # Why runs did not succeed (state, error code and message of up to five), for the message
    # of a failed assertion; not a figure.
    why_not_succeeded: tuple[str, ...] = ()

    def figures(self) -> dict[str, int]:
        """The audit's counts as a dict (for the JSON line)."""
        figures = asdict(self)
        figures.pop("why_not_succeeded")
        return figures


async def audit(fleet: Fleet, run_ids: Sequence[str], tenant_ids: Iterable[str]) -> Audit:
    """Count lost, duplicated and backward outcomes of ``run_ids``."""
    runs = await fleet.store.get_runs(run_ids)
    stats = await fleet.training_stats()
    backward = 0
    stale = 0
    for tenant_id in tenant_ids:
        backward += await backward_deploys(fleet, tenant_id)
        stale += 0 if await serves_latest_model(fleet, tenant_id) else 1
    not_terminal = sum(1 for r in runs if not r.state.terminal)
    missing = len(set(run_ids)) - len(runs)
    return Audit(
        runs=len(run_ids),
        lost=not_terminal + missing,
        not_terminal=not_terminal,
        missing=missing,
        failed=sum(1 for r in runs if r.state is RunState.FAILED),
        succeeded=sum(1 for r in runs if r.state is RunState.SUCCEEDED),
        double_started=len(started_twice(stats)),
        jobs_started=int(stats["jobs_started"]),
        jobs_created=int(stats["jobs_created"]),
        backward_deploys=backward,
        stale_endpoints=stale,
        why_not_succeeded=tuple(
            f"{r.id} {r.state.value} {r.error_code}: {r.error}"
            for r in runs
            if r.state is not RunState.SUCCEEDED
        )[:5],
    )


async def backward_deploys(fleet: Fleet, tenant_id: str) -> int:
    """Deploys in a tenant's history whose sequence is not newer than the one before."""
    history = list(reversed(await fleet.store.model_history(tenant_id, limit=10_000)))
    return sum(1 for a, b in itertools.pairwise(history) if b.seq <= a.seq)


async def serves_latest_model(fleet: Fleet, tenant_id: str) -> bool:
    """Whether the tenant's endpoint or service serves the model its record says is deployed."""
    tenant = await fleet.store.get_tenant(tenant_id)
    if tenant is None or tenant.deployed is None:
        return tenant is not None
    if isinstance(tenant.target, ClassicTarget):
        workspace = fleet.config["workspaces"][0]
        url = (
            f"{fleet.emulator_url}/workspaces/{workspace['id']}/webservices/"
            f"{tenant.target.web_service_id}/endpoints/{tenant.endpoint_name}"
        )
        headers = {"Authorization": f"Bearer {workspace['authorization_token']}"}
        async with fleet.http.get(url, headers=headers) as reply:
            endpoint = await reply.json()
        locations = [r["Location"]["RelativeLocation"] for r in endpoint["Resources"]]
    else:
        arm = fleet.config["arm"]
        url = (
            f"{fleet.emulator_url}/subscriptions/{arm['subscription_id']}/resourceGroups/"
            f"{arm['resource_groups'][0]}/providers/Microsoft.MachineLearning/webServices/"
            f"{tenant.service_name}?api-version=2017-01-01"
        )
        headers = {"Authorization": f"Bearer {arm['token']}"}
        async with fleet.http.get(url, headers=headers) as reply:
            service = await reply.json()
        assets = service["properties"]["assets"].values()
        locations = [a["locationInfo"]["uri"] for a in assets if a.get("type") == "Resource"]
    return any(tenant.deployed.model_path in location for location in locations)


async def wait_all_terminal(fleet: Fleet, run_ids: Sequence[str], within: float) -> float:
    """Wait until every run is terminal or ``within`` passes; returns the seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < within:
        runs = await fleet.store.get_runs(run_ids)
        if len(runs) == len(run_ids) and all(r.state.terminal for r in runs):
            break
        await asyncio.sleep(0.5)
    return time.monotonic() - started


def errors_of(runs: Iterable[Run]) -> list[str]:
    """Errors of runs that did not succeed (for assertion messages)."""
    return [
        f"{r.id[:8]} {r.state.value}: {r.error}" for r in runs if r.state is not RunState.SUCCEEDED
    ]
