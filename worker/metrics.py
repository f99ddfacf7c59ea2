"""Prometheus metrics of the worker (no tenant ids in labels: their number is unbounded)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import Counter, Gauge, Histogram


@dataclass(frozen=True)
class WorkerMetrics:
    """Every metric the worker exports."""

    runs: Counter
    run_seconds: Histogram
    phase_seconds: Histogram
    bes_started: Counter
    bes_in_flight: Gauge
    slots_in_use: Gauge
    service_throttled: Gauge
    backlog: Gauge
    redis_memory_used: Gauge
    remote_calls: Counter
    reconciled: Counter
    sweeper_polls: Counter


METRICS = WorkerMetrics(
    runs=Counter("retrainq_runs_total", "Runs that ended, by outcome", ["outcome"]),
    run_seconds=Histogram(
        "retrainq_run_seconds",
        "Run duration from creation to end, by outcome",
        ["outcome"],
        buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600),
    ),
    phase_seconds=Histogram(
        "retrainq_phase_seconds",
        "Time spent in each run phase",
        ["phase"],
        buckets=(0.05, 0.25, 1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600),
    ),
    bes_started=Counter(
        "retrainq_bes_jobs_started_total", "BES jobs started, by training service", ["service"]
    ),
    bes_in_flight=Gauge(
        "retrainq_bes_jobs_in_flight", "Runs in training (BES job started, not ended)"
    ),
    slots_in_use=Gauge(
        "retrainq_slots_in_use", "Leased BES slots, by training service", ["service"]
    ),
    service_throttled=Gauge(
        "retrainq_service_throttled",
        "1 while dispatch to a training service is paused after a 429/503, else 0",
        ["service"],
    ),
    redis_memory_used=Gauge(
        "retrainq_redis_memory_used_ratio",
        "Redis used_memory / maxmemory (0 while maxmemory is unset); writes fail at 1",
    ),
    backlog=Gauge(
        "retrainq_backlog",
        "Steps and runs waiting: ready (runnable now), deferred, waiting_slot, parked (polled "
        "by the sweeper)",
        ["kind"],
    ),
    remote_calls=Counter(
        "retrainq_remote_calls_total", "Calls to Azure ML, by API and status", ["api", "status"]
    ),
    reconciled=Counter("retrainq_reconciled_total", "Overdue runs re-enqueued by the reconciler"),
    sweeper_polls=Counter(
        "retrainq_sweeper_polls_total",
        "Parked runs the sweeper polled, by outcome (running, woken, gone)",
        ["outcome"],
    ),
)
