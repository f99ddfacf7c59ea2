"""The reconciler: steps that should have run but did not are enqueued again.

Every worker runs it as an arq cron job (arq runs each tick on one worker of the fleet). A
run is overdue when its step was due more than ``reconcile_grace_seconds`` ago: its arq job
was lost (a Redis restart that dropped the queue, an expired job) or its worker died. A
parked run is overdue when no sweeper polled it for several claim periods (no worker runs a
sweeper). Arq's job ids are per (run, version), so enqueueing a step that is queued or
running already is a no-op. Free slots are handed out at the same time, in case a crash
left one between a release and its hand-over.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import structlog

from worker.deps import Deps
from worker.metrics import METRICS
from worker.run.scripts import now_ms

log = structlog.get_logger("retrainq.reconciler")

STALLED_PARKED_CLAIMS = 3


async def reconcile(deps: Deps, dispatch: Callable[[str], Awaitable[object]]) -> int:
    """Re-enqueue overdue runs and fill free slots; returns how many steps were enqueued."""
    ledger = deps.ledger
    settings = deps.settings
    overdue = await ledger.due(now_ms() - int(settings.reconcile_grace_seconds * 1000))
    # Parked runs are the sweepers' to poll. One left overdue for several claim periods has
    # no sweeper (every worker runs with poll_sweeper off, say after a rollback, or only
    # burst workers are left): a step polls it instead, and goes on polling it as a step.
    stalled_ms = int(STALLED_PARKED_CLAIMS * settings.sweep_claim_seconds * 1000)
    overdue += await ledger.overdue_parked(now_ms() - stalled_ms)
    enqueued = 0
    for run_id in overdue:
        version = await ledger.version(run_id)
        if version is None:
            await ledger.not_due(run_id)
        elif await deps.queue.advance(run_id, version):
            enqueued += 1
    if enqueued:
        METRICS.reconciled.inc(enqueued)
        log.info("reconciler.enqueued", runs=enqueued, overdue=len(overdue))
    for service in settings.training_services:
        await dispatch(service)
    return enqueued
