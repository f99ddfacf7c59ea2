"""What operators see: cancellation, step log context, worker health and metrics, and the
backlog gauges every worker samples."""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import timedelta

import pytest
import structlog
from prometheus_client import REGISTRY, CollectorRegistry, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector
from structlog.testing import capture_logs

from tests.integration.fleet import QUEUE, Fleet, until
from tests.runs import put_in_state
from worker.redisio import reply
from worker.schemas import RunState
from worker.store import RunRequest

pytestmark = pytest.mark.timeout(180)

DEFERRED_GAUGE = 'retrainq_backlog{kind="deferred"}'
PROBES = 50  # far more than the cron jobs arq keeps deferred


async def test_cancelling_a_training_run_deletes_its_bes_job(fleet: Fleet) -> None:
    """A cancel request ends the run ``cancelled`` and the remote job is cancelled too."""
    tenant = await fleet.onboard("cancel-me")
    await fleet.emulator("PUT", "/_emulator/settings", {"min_job_seconds": 60})
    fleet.run_workers(1)
    run_id = await fleet.retrain(tenant.id)

    async def training() -> bool:
        run = await fleet.store.get_run(run_id)
        return run is not None and run.state is RunState.TRAINING

    await until(training, within=30)
    assert await fleet.store.request_cancel(run_id)
    runs = await fleet.wait_terminal([run_id], within=30)
    assert runs[0].state is RunState.CANCELLED
    stats = await fleet.training_stats()
    assert stats["jobs_cancelled"] == 1
    assert stats["running_now"] == 0


async def test_step_logs_carry_run_context_and_metrics_count_outcomes(fleet: Fleet) -> None:
    """Every step line names tenant, run, batch, state; /metrics and /healthz answer."""
    tenants = [await fleet.onboard(f"obs{i}") for i in range(3)]
    before = {name: _sample(REGISTRY, name, labels) for name, labels in COUNTED}
    with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as lines:
        (worker,) = fleet.run_workers(1)
        run_ids = [await fleet.retrain(t.id) for t in tenants]
        runs = await fleet.wait_terminal(run_ids)
        assert all(r.state is RunState.SUCCEEDED for r in runs)
        base = f"http://127.0.0.1:{worker.port}"
        async with fleet.http.get(f"{base}/metrics") as response:
            exported = CollectorRegistry()
            exported.register(_Parsed(await response.text()))
        async with fleet.http.get(f"{base}/healthz") as response:
            assert (await response.json())["status"] == "ok"
        await worker.stop()
    # Counters are the process's: this test's runs are what they gained during it.
    for name, labels in COUNTED:
        assert _sample(exported, name, labels) - before[name] == 3, name
    assert _sample(exported, "retrainq_remote_calls_total", {"api": "bes", "status": "200"}) > 0
    submitted = [line for line in lines if line.get("event") == "bes.submitted"]
    assert len(submitted) == 3
    for line in submitted:
        assert line["tenant_id"] in {t.id for t in tenants}
        assert line["run_id"] in run_ids
        assert line["state"] == "submitting"
        assert line["bes_job_id"]
        assert "batch_id" in line
    succeeded = [line for line in lines if line.get("event") == "run.succeeded"]
    assert sorted(line["run_id"] for line in succeeded) == sorted(run_ids)


COUNTED = [
    ("retrainq_runs_total", {"outcome": "succeeded"}),
    ("retrainq_bes_jobs_started_total", {"service": "default"}),
]


class _Parsed(Collector):
    """The metric families of a Prometheus text exposition."""

    def __init__(self, text: str) -> None:
        self.families = list(text_string_to_metric_families(text))

    def collect(self) -> Iterable[Metric]:
        return self.families


def _sample(registry: CollectorRegistry, name: str, labels: dict[str, str]) -> float:
    return registry.get_sample_value(name, labels) or 0.0


async def test_offboarding_with_remote_removal_deletes_endpoint_and_service(fleet: Fleet) -> None:
    """The worker deletes an offboarded tenant's classic endpoint and new web service."""
    classic = await fleet.onboard("gone-classic")
    new = await fleet.onboard("gone-new", "new")
    fleet.run_workers(1)
    runs = await fleet.wait_terminal([await fleet.retrain(classic.id), await fleet.retrain(new.id)])
    assert all(r.state is RunState.SUCCEEDED for r in runs)
    await fleet.runtime_of(classic)  # both exist and serve before offboarding
    await fleet.runtime_of(new)
    for tenant in (classic, new):
        await fleet.store.offboard_tenant(tenant.id, remove_remote=True)
        await fleet.queue.offboard(tenant.id)

    async def removed() -> bool:
        tenants = [await fleet.store.get_tenant(t.id) for t in (classic, new)]
        return all(t is not None and t.remote_removal == "done" for t in tenants)

    await until(removed, within=30)
    stats = await fleet.emulator("GET", "/_emulator/stats")
    endpoints = stats["web_services"]["Bike Rental Scoring"]["endpoints"]
    current = await fleet.store.get_tenant(classic.id)
    assert current is not None
    assert current.endpoint_name not in endpoints
    assert not any(name.endswith("/rq-gone-new") for name in stats["arm_web_services"])
    assert any(name.endswith("/bike-rental-template") for name in stats["arm_web_services"])


async def test_a_run_past_its_deadline_fails_and_its_bes_job_is_deleted(fleet: Fleet) -> None:
    """A BES job that outlives the run's deadline is deleted; the run fails with the reason."""
    tenant = await fleet.onboard("slowpoke")
    await fleet.emulator("PUT", "/_emulator/settings", {"min_job_seconds": 600})
    fleet.store.run_timeout = timedelta(seconds=4)  # the deadline is set when the run is made
    fleet.run_workers(1)
    run_id = await fleet.retrain(tenant.id)
    runs = await fleet.wait_terminal([run_id], within=30)
    assert runs[0].state is RunState.FAILED
    assert runs[0].error_code == "deadline_exceeded"
    assert runs[0].bes_started
    stats = await fleet.training_stats()
    assert stats["jobs_cancelled"] == 1
    assert stats["running_now"] == 0


async def test_a_requested_rerun_survives_a_crash_right_after_the_run_ended(fleet: Fleet) -> None:
    """A run saved as ended whose follow-up was never created gets it from the reconciler."""
    tenant = await fleet.onboard("rerun")
    created = await fleet.store.create_run(RunRequest(tenant_id=tenant.id))
    run = await fleet.store.get_run(created.run_id)
    assert run is not None
    # What a worker leaves behind when killed between saving the end and its tail work.
    await reply(fleet.redis.hset(fleet.store.keys.run(run.id), "rerun", "1"))
    await put_in_state(fleet.store, run, RunState.FAILED, due_in=0)
    fleet.run_workers(1, RETRAINQ_RECONCILE_GRACE_SECONDS="0.5")

    async def followed_up() -> bool:
        return len(await fleet.store.tenant_run_ids(tenant.id)) == 2

    await until(followed_up, within=30)
    newest, ended = await fleet.store.tenant_run_ids(tenant.id)
    assert ended == run.id
    runs = await fleet.wait_terminal([newest])
    assert runs[0].state is RunState.SUCCEEDED
    assert runs[0].reason == "rerun"
    assert not await fleet.store.is_due(run.id)
    # Running the tail work again (a duplicate step) creates no third run.
    await fleet.store.redis.zadd(fleet.store.keys.due, {run.id: 0})
    await until(lambda: _not_due(fleet, run.id), within=30)
    assert len(await fleet.store.tenant_run_ids(tenant.id)) == 2


async def _not_due(fleet: Fleet, run_id: str) -> bool:
    return not await fleet.store.is_due(run_id)


async def test_every_worker_samples_the_backlog_gauges_itself(fleet: Fleet) -> None:
    """Both workers export the same, current backlog within one sampling period (5 s), so
    the autoscaler's max() never reads an old value from a worker that sampled long ago."""
    workers = fleet.start_workers(2)

    async def deferred_backlogs() -> list[float]:
        values = []
        for worker in workers:
            async with fleet.http.get(f"http://127.0.0.1:{worker.port}/metrics") as reply:
                text = await reply.text()
            line = next((row for row in text.splitlines() if row.startswith(DEFERRED_GAUGE)), None)
            values.append(float(line.split()[-1]) if line else -1.0)
        return values

    async def all_at_least(low: float) -> bool:
        return min(await deferred_backlogs()) >= low

    async def all_below(high: float) -> bool:
        return max(await deferred_backlogs()) < high

    await until(lambda: all_below(PROBES), within=30)  # both workers up and sampling
    far = int((time.time() + 3600) * 1000)
    await fleet.redis.zadd(QUEUE, {f"probe-{i}": far for i in range(PROBES)})
    await until(lambda: all_at_least(PROBES), within=6, every=0.2)
    await fleet.redis.zrem(QUEUE, *(f"probe-{i}" for i in range(PROBES)))
    await until(lambda: all_below(PROBES), within=6, every=0.2)
