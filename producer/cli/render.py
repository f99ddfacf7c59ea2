"""How the CLI shows API answers: short human tables, or JSON for scripts."""

from __future__ import annotations

from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from producer.schemas import BatchStatus, TenantPage, TenantView
from worker.schemas import Run


def show_json(console: Console, model: BaseModel) -> None:
    """The model as indented JSON (stable for scripts)."""
    console.print_json(model.model_dump_json())


def show_fields(console: Console, fields: dict[str, object]) -> None:
    """``name: value`` lines, skipping empty values."""
    width = max(len(name) for name in fields)
    for name, value in fields.items():
        if value not in (None, "", {}, []):
            console.print(f"{name:<{width}}  {value}", highlight=False, markup=False)


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
        },
    )


def show_tenants(console: Console, page: TenantPage) -> None:
    """A page of tenants as a table."""
    table = Table("id", "kind", "service", "data", "deployed run")
    for tenant in page.items:
        table.add_row(
            tenant.id,
            tenant.target.kind,
            tenant.training_service,
            f"v{tenant.data_version}" if tenant.data_path else "-",
            tenant.deployed.run_id if tenant.deployed else "-",
        )
    console.print(table)
    more = f"; next page: --offset {page.next_offset}" if page.next_offset is not None else ""
    console.print(f"{len(page.items)} shown of {page.total}{more}", highlight=False)


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
            "metrics": ", ".join(f"{k}={v:.4g}" for k, v in run.metrics.items()),
            "decision": run.decision.reason if run.decision else None,
            "cancel requested": run.cancel_requested or None,
            "rerun requested": run.rerun_requested or None,
            "error": run.error,
        },
    )


def batch_summary(status: BatchStatus) -> str:
    """Non-zero counts by state, e.g. ``queued 10 · training 3 · succeeded 7``."""
    parts = [f"{state} {count}" for state, count in status.counts.items() if count]
    return " · ".join(parts) or "no runs"
