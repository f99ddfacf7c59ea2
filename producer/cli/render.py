"""How the CLI shows API answers as short human tables (``-o table``, the default)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from producer.cli.gate_view import evaluation_text, judged_on, plain, show_comparison, signed
from producer.schemas import BatchStatus, Models, RunBrief, ScheduleView, TenantView
from worker.evaluate import Decision, Gate
from worker.schemas import DeployedModel, Run, RunState


def show_fields(console: Console, fields: dict[str, object]) -> None:
    """``name: value`` lines, skipping empty values."""
    width = max(len(name) for name in fields)
    for name, value in fields.items():
        if value not in (None, "", {}, []):
            console.print(f"{name:<{width}}  {value}", highlight=False, markup=False)


def show_model(console: Console, model: BaseModel) -> None:
    """Any answer as ``field  value`` lines."""
    show_fields(console, model.model_dump(mode="json"))


def show_tenant(console: Console, tenant: TenantView) -> None:
    """One tenant."""
    deployed = tenant.deployed
    show_fields(
        console,
        {
            "id": tenant.id,
            "name": tenant.display_name,
            "target": tenant.target.model_dump_json(),
            "service": tenant.training_service,
            "data": f"{tenant.data_path} (v{tenant.data_version})" if tenant.data_path else None,
            "schedule": tenant.schedule,
            "deployed": f"run {deployed.run_id} (seq {deployed.seq})" if deployed else "none",
            "judged": verdict_text(deployed.decision) if deployed else None,
        },
    )


def verdict_text(decision: Decision | None) -> str | None:
    """A decision in one line: what it compared and the metric of both models."""
    if decision is None:
        return None
    metric = decision.metric
    if decision.baseline is None:
        return f"{judged_on(decision)}: {metric} {plain(decision.value)}, no deployed model before"
    change = signed(decision.value - decision.baseline) if decision.value is not None else ""
    return (
        f"{judged_on(decision)}: {metric} deployed {plain(decision.baseline)} -> "
        f"candidate {plain(decision.value)} ({change})"
    )


def show_models(console: Console, models: Models) -> None:
    """A tenant's deployed versions, newest first, each with what its gate compared."""
    table = Table("seq", "run", "deployed at", "judged on", "before", "this model", "change")
    for model in models.history:
        table.add_row(*_model_row(model, models.current))
    console.print(table)


def _model_row(model: DeployedModel, current: DeployedModel | None) -> list[str]:
    decision = model.decision
    serving = " (serving)" if current is not None and current.run_id == model.run_id else ""
    before = decision.baseline if decision else None
    value = decision.value if decision else None
    change = signed(value - before) if value is not None and before is not None else ""
    judged = "rollback" if model.rollback_of else judged_on(decision)
    return [
        f"v{model.seq}{serving}",
        model.run_id,
        when(model.deployed_at),
        judged,
        plain(before),
        plain(value),
        change,
    ]


def show_tenants(console: Console, tenants: Sequence[TenantView]) -> None:
    """Tenants as a table."""
    table = Table("id", "kind", "service", "data", "deployed run")
    for tenant in tenants:
        table.add_row(
            tenant.id,
            tenant.target.kind,
            tenant.training_service,
            f"v{tenant.data_version}" if tenant.data_path else "-",
            tenant.deployed.run_id if tenant.deployed else "-",
        )
    console.print(table)


def show_run(console: Console, run: Run) -> None:
    """One run."""
    show_fields(
        console,
        {
            "run": run.id,
            "tenant": run.tenant_id,
            "state": run.state.value,
            "lane": run.lane.value,
            "batch": run.batch_id,
            "reason": run.reason,
            "created": run.created_at.isoformat(timespec="seconds"),
            "updated": run.updated_at.isoformat(timespec="seconds"),
            "bes job": run.bes_job_id,
            "reported metrics": ", ".join(f"{k}={v:.4g}" for k, v in run.metrics.items()),
            "evaluation": evaluation_text(run),
            "holdout blob": run.holdout.holdout_path if run.holdout else None,
            "decision": _decision_line(run.decision),
            "gate": gate_reached(run),
            "retrying": _retrying(run),
            "cancel requested": run.cancel_requested or None,
            "rerun requested": run.rerun_requested or None,
            "error": run.error,
        },
    )
    if run.decision is not None:
        show_comparison(console, run.decision)


def _decision_line(decision: Decision | None) -> str | None:
    if decision is None:
        return None
    verdict = "accepted" if decision.accepted else "rejected"
    return f"{verdict}: {decision.reason}"


def gate_reached(run: Run) -> str | None:
    """``not reached`` for a run that failed or was cancelled before its gate decided."""
    if run.decision is None and run.state in (RunState.FAILED, RunState.CANCELLED):
        return "not reached"
    return None


def _retrying(run: Run) -> str | None:
    """The last transient error of a run that is retrying, its attempt and next try."""
    if run.state.terminal or not run.last_error:
        return None
    return (
        f"{short(run.last_error, 80)} (failures {run.step_failures}, "
        f"next try {when(run.next_attempt_at)})"
    )


def batch_summary(status: BatchStatus) -> str:
    """Non-zero counts by state, e.g. ``queued 10 · training 3 · succeeded 7``."""
    parts = [f"{state} {count}" for state, count in status.counts.items() if count]
    return " · ".join(parts) or "no runs"


def bar_text(status: BatchStatus) -> str:
    """A batch bar's label: its state, then its non-zero counts, e.g.
    ``finished with failures · succeeded 4 · failed 1``."""
    return f"{status.state.replace('_', ' ')} · {batch_summary(status)}"


def when(moment: datetime | None) -> str:
    """A UTC time to the second, e.g. ``2026-12-04 18:31:58Z``."""
    return moment.strftime("%Y-%m-%d %H:%M:%SZ") if moment else "-"


def short(text: str | None, width: int = 60) -> str:
    """``text`` on one line, cut to ``width`` characters."""
    flat = " ".join((text or "").split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def show_runs(console: Console, runs: Sequence[Run]) -> None:
    """Runs as a table."""
    table = Table()
    table.add_column("run", no_wrap=True, min_width=32)
    table.add_column("tenant", no_wrap=True)
    table.add_column("state", no_wrap=True)
    table.add_column("lane", no_wrap=True)
    table.add_column("created", no_wrap=True)
    table.add_column("error")
    for run in runs:
        table.add_row(
            run.id,
            run.tenant_id,
            run.state.value + (" (archived)" if getattr(run, "archived", False) else ""),
            run.lane.value,
            when(run.created_at),
            short(run.error, 50) or "-",
        )
    console.print(table)


def eta(status: BatchStatus) -> str:
    """The batch's ETA as the API reckons it, or ``unknown``."""
    if status.eta_seconds is None:
        return "unknown"
    seconds = round(status.eta_seconds)
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def show_batches(console: Console, batches: Sequence[BatchStatus]) -> None:
    """Batches as a table."""
    table = Table()
    table.add_column("batch", no_wrap=True, min_width=32)
    table.add_column("created", no_wrap=True)
    table.add_column("reason")
    table.add_column("state", no_wrap=True)
    table.add_column("done", no_wrap=True)
    table.add_column("states")
    for batch in batches:
        done = f"{batch.done}/{batch.total}"
        row = (batch.id, when(batch.created_at), batch.reason, batch.state, done)
        table.add_row(*row, batch_summary(batch))
    console.print(table)


def show_batch(console: Console, status: BatchStatus) -> None:
    """One batch's progress."""
    rate = status.throughput_per_second
    show_fields(
        console,
        {
            "batch": status.id,
            "created": when(status.created_at),
            "reason": status.reason,
            "state": status.state,
            "done": f"{status.done}/{status.total} ({status.progress:.0%})",
            "states": batch_summary(status),
            "throughput": "unknown" if rate is None else f"{rate * 60:.1f} runs/min",
            "eta": eta(status) if status.done < status.total else None,
        },
    )


def show_failures(console: Console, failed: Sequence[RunBrief]) -> None:
    """Failed runs with their reasons (tenant, state, code, error)."""
    table = Table()
    table.add_column("tenant", no_wrap=True)
    table.add_column("run", no_wrap=True, min_width=32)
    table.add_column("state", no_wrap=True)
    table.add_column("code")
    table.add_column("reason")
    for run in failed:
        reason = run.error or (run.decision.reason if run.decision else "")
        table.add_row(run.tenant_id, run.id, run.state.value, run.error_code or "-", short(reason))
    console.print(table)


def show_schedules(console: Console, schedules: Sequence[ScheduleView]) -> None:
    """Schedules as a table, soonest first."""
    table = Table("name", "cron", "kind", "tenant/target", "next fire")
    for item in schedules:
        scope = item.tenant_id or item.target_kind or "all"
        table.add_row(item.name, item.cron, item.kind, scope, when(item.next_fire_at))
    console.print(table)


def show_schedule(console: Console, schedule: ScheduleView) -> None:
    """One schedule."""
    show_schedules(console, [schedule])


def show_gate(console: Console, gate: Gate) -> None:
    """A tenant's gate."""
    show_fields(
        console,
        {
            "metric": gate.metric,
            "direction": gate.effective_direction,
            "threshold": "none" if gate.threshold is None else f"{gate.threshold:g}",
            "max regression": (
                "none" if gate.max_regression is None else f"{gate.max_regression:.0%}"
            ),
            "max regression (absolute)": (
                "none"
                if gate.max_regression_absolute is None
                else f"{gate.max_regression_absolute:g}"
            ),
            "evaluation": gate.evaluation,
            **(_holdout_fields(gate) if gate.evaluation == "holdout" else {}),
        },
    )


def _holdout_fields(gate: Gate) -> dict[str, str]:
    """How a holdout-mode gate splits and how sure it must be."""
    holdout = gate.holdout
    split = (
        f"newest {holdout.fraction:.0%} by {holdout.time_column}"
        if holdout.time_column
        else (f"{holdout.fraction:.0%} of the rows, seeded per run")
    )
    return {
        "holdout": split,
        "min holdout rows": str(holdout.min_rows),
        "label": holdout.label or "the training service's",
        "confidence": (
            "none"
            if gate.confidence is None
            else f"{gate.confidence:.0%} ({gate.resamples} resamples)"
        ),
    }


class _Imported(Protocol):
    id: str
    api_key: str
    run_id: str | None


def show_imported(console: Console, created: Sequence[_Imported]) -> None:
    """Onboarded tenants with their API keys (shown once) and first runs."""
    table = Table("tenant", "api key", "first run")
    for item in created:
        table.add_row(item.id, item.api_key, item.run_id or "-")
    console.print(table)
