"""``retrainq tenants import FILE.csv``: onboard many tenants at once, concurrently.

One row a tenant. ``id`` is required; the target is ``web_service_id`` and ``resource_name``
(a classic endpoint) or ``template_service`` (a new web service). Optional: ``display_name``,
``training_service``, ``data_path``. Every row is checked before the first request; tenants
that exist already are skipped, so a file can be imported again after fixing failed rows.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO

from pydantic import BaseModel, ValidationError
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from producer.cli import render
from producer.cli.base import CommandError, count
from producer.cli.client import ApiClient, ApiError
from producer.cli.output import Output
from producer.schemas import TenantCreate
from worker.schemas import ClassicTarget, NewServiceTarget, Target
from worker.settings import describe_validation_error

COLUMNS = (
    "id",
    "display_name",
    "web_service_id",
    "resource_name",
    "template_service",
    "training_service",
    "data_path",
)
MAX_ROWS = 100_000


@dataclass(frozen=True)
class Row:
    """A CSV line and the tenant it onboards."""

    line: int
    tenant: TenantCreate


class Imported(BaseModel):
    """One onboarded tenant: its id, its API key (shown only now) and its first run."""

    id: str
    api_key: str
    run_id: str | None


class ImportFailure(BaseModel):
    """A row that was not onboarded, and why."""

    line: int
    id: str
    error: str


class ImportSummary(BaseModel):
    """What an import did."""

    created: list[Imported]
    skipped: list[str]
    failed: list[ImportFailure]


def _target(values: dict[str, str]) -> Target:
    if values.get("template_service"):
        return NewServiceTarget(template_service=values["template_service"])
    if values.get("web_service_id") and values.get("resource_name"):
        return ClassicTarget(
            web_service_id=values["web_service_id"], resource_name=values["resource_name"]
        )
    raise ValueError("give template_service, or web_service_id and resource_name")


def read_rows(stream: IO[str], train: bool) -> list[Row]:
    """Every row as a tenant to create; a CommandError lists every bad row and column."""
    reader = csv.DictReader(stream)
    header = reader.fieldnames or []
    unknown = [name for name in header if name not in COLUMNS]
    if "id" not in header or unknown:
        raise CommandError(
            f"bad CSV header: needs 'id'; allowed columns: {', '.join(COLUMNS)}"
            + (f"; unknown: {', '.join(unknown)}" if unknown else "")
        )
    rows: list[Row] = []
    errors: list[str] = []
    seen: dict[str, int] = {}
    for values in reader:
        line = reader.line_num
        if len(rows) + len(errors) >= MAX_ROWS:
            raise CommandError(f"more than {MAX_ROWS} rows: split the file")
        cells = {k: (v or "").strip() for k, v in values.items() if k is not None}
        try:
            tenant = TenantCreate(
                id=cells["id"],
                display_name=cells.get("display_name", ""),
                target=_target(cells),
                training_service=cells.get("training_service") or "default",
                data_path=cells.get("data_path") or None,
                train=train,
            )
        except ValidationError as exc:
            errors.append(f"line {line}: {describe_validation_error(exc)}")
            continue
        except ValueError as exc:
            errors.append(f"line {line}: {exc}")
            continue
        if tenant.id in seen:
            errors.append(f"line {line}: id {tenant.id!r} repeats line {seen[tenant.id]}")
            continue
        seen[tenant.id] = line
        rows.append(Row(line, tenant))
    if errors:
        shown = "; ".join(errors[:20])
        more = f" (and {len(errors) - 20} more)" if len(errors) > 20 else ""
        raise CommandError(
            f"{count(len(errors), 'bad row', 'bad rows')}, nothing imported: {shown}{more}"
        )
    if not rows:
        raise CommandError("the file has no rows")
    return rows


async def _import_all(
    client: ApiClient, rows: list[Row], concurrency: int, advance: Callable[[], None]
) -> ImportSummary:
    """Create every row's tenant, ``concurrency`` at a time. When the API stops answering
    (unreachable or 5xx), the rows not yet sent are failed as not attempted, so the keys of
    the tenants already created are still printed."""
    summary = ImportSummary(created=[], skipped=[], failed=[])
    gate = asyncio.Semaphore(concurrency)
    down: list[ApiError] = []

    async def one(row: Row) -> None:
        async with gate:
            if down:
                error = f"not attempted: the API stopped answering ({down[0]})"
                summary.failed.append(ImportFailure(line=row.line, id=row.tenant.id, error=error))
                advance()
                return
            try:
                created = await client.create_tenant(row.tenant)
            except ApiError as exc:
                if exc.status == 409 and "exists" in exc.detail:
                    summary.skipped.append(row.tenant.id)
                else:
                    if exc.status == 0 or exc.status >= 500:
                        down.append(exc)
                    failure = ImportFailure(line=row.line, id=row.tenant.id, error=str(exc))
                    summary.failed.append(failure)
            else:
                run_id = created.run.id if created.run else None
                summary.created.append(
                    Imported(id=created.tenant.id, api_key=created.api_key, run_id=run_id)
                )
            advance()

    await asyncio.gather(*(one(row) for row in rows))
    summary.created.sort(key=lambda item: item.id)
    summary.failed.sort(key=lambda item: item.line)
    return summary


def _plain_progress(out: Output, total: int) -> Callable[[], None]:
    """A progress line on stderr every tenth of the rows (for logs and pipes)."""
    step = max(1, total // 10)
    done = 0

    def advance() -> None:
        nonlocal done
        done += 1
        if done % step == 0 or done == total:
            out.note(f"import: {done}/{total} rows done")

    return advance


async def tenants_import(client: ApiClient, out: Output, args: argparse.Namespace) -> int:
    """Onboard every tenant of a CSV file; exit 1 if any row failed."""
    if not 1 <= args.concurrency <= 64:
        raise CommandError("--concurrency must be in [1, 64]")
    with args.file as stream:
        rows = read_rows(stream, train=not args.no_train)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    if out.interactive:
        with Progress(*columns, TimeElapsedColumn(), console=out.err) as progress:
            task = progress.add_task("importing", total=len(rows))
            summary = await _import_all(
                client, rows, args.concurrency, lambda: progress.advance(task)
            )
    else:
        summary = await _import_all(client, rows, args.concurrency, _plain_progress(out, len(rows)))
    if out.mode == "table":
        if summary.created:
            render.show_imported(out.console, summary.created)
    elif out.mode == "jsonl":
        for item in summary.created:
            out.line(item.model_dump_json())
    else:
        out.line(summary.model_dump_json(indent=2))
    out.note(
        f"{count(len(summary.created), 'tenant', 'tenants')} onboarded (their API keys are "
        f"shown only now); {len(summary.skipped)} already existed; {len(summary.failed)} failed"
    )
    for failure in summary.failed:
        out.note(f"  line {failure.line} ({failure.id}): {failure.error}")
    return 1 if summary.failed else 0
