"""CLI commands about runs and batches: retrain, rollback, runs, bulk, batches, watch."""

from __future__ import annotations

import argparse

from producer.cli import render
from producer.cli.base import CommandError, Leaf, Subcommands, count, group
from producer.cli.client import ApiClient, ApiError
from producer.cli.output import Output
from producer.cli.watching import FAILED_STATES, BatchReport, failed_runs, follow, ride_out
from producer.schemas import BatchAccepted, BatchCreate, BatchStatus, RunBrief
from worker.schemas import TARGET_KINDS


async def retrain(client: ApiClient, out: Output, args: argparse.Namespace) -> int:
    """Retrain one tenant; prints the run (the active one when coalesced)."""
    accepted = await client.retrain(args.tenant, args.reason, args.idempotency_key)
    if out.mode != "table":
        out.show(accepted, render.show_model)
        return 0
    note = " (already active; coalesced)" if accepted.coalesced else ""
    out.line(f"run {accepted.run.id} {accepted.run.state.value}{note}")
    return 0


async def rollback(client: ApiClient, out: Output, args: argparse.Namespace) -> int:
    """Redeploy the tenant's previous model."""
    accepted = await client.rollback(args.tenant)
    if out.mode != "table":
        out.show(accepted, render.show_model)
        return 0
    out.line(f"rollback run {accepted.run.id} -> {accepted.run.rollback_to}")
    return 0


async def runs_list(client: ApiClient, out: Output, args: argparse.Namespace) -> int:
    """Runs newest first, filtered by state, tenant, batch and age."""
    filters = {"limit": str(args.limit)}
    if args.state:
        filters["state"] = ",".join(args.state)
    for name in ("tenant", "batch", "since"):
        if getattr(args, name):
            filters[name] = getattr(args, name)
    listing = await client.runs(filters)
    out.show_page(listing, listing.items, render.show_runs)
    out.note(f"{count(len(listing.items), 'run', 'runs')}")
    archived = sum(1 for run in listing.items if run.archived)
    if archived:
        out.note(
            f"{count(archived, 'run is', 'runs are')} archived: read from blob storage, "
            "they no longer change (retrainq runs show <id> still shows each)"
        )
    if listing.more:
        out.note(f"more runs match: raise --limit (now {listing.limit})")
    if listing.truncated:
        out.note("only the newest runs were read: give --tenant or --batch to reach older ones")
    return 0


async def runs_show(client: ApiClient, out: Output, args: argparse.Namespace) -> int:
    """One run."""
    out.show(await client.run(args.run), render.show_run)
    return 0


async def runs_cancel(client: ApiClient, out: Output, args: argparse.Namespace) -> int:
    """Ask a run to stop."""
    run = await client.cancel(args.run)
    if out.mode != "table":
        out.show(run, render.show_run)
        return 0
    out.line(f"run {run.id}: cancel requested ({run.state.value})")
    return 0


def batch_notes(accepted: BatchAccepted) -> str:
    """What a bulk retrain started, in one line: ``2 runs queued; 1 tenant already running ...``."""
    notes = [count(accepted.total, "run", "runs") + " queued"]
    if accepted.coalesced:
        notes.append(
            count(accepted.coalesced, "tenant", "tenants") + " already running (coalesced)"
        )
    if accepted.not_found:
        notes.append(f"unknown tenants: {', '.join(accepted.not_found[:10])}")
    return "; ".join(notes)


async def _start_batch(client: ApiClient, out: Output, body: BatchCreate) -> int:
    """Start a batch; its id alone on stdout (or JSON), the notes on stderr; 1 if it started
    nothing (no run queued and no tenant already running)."""
    return _started(out, await client.create_batch(body))


def _started(out: Output, accepted: BatchAccepted) -> int:
    """A started batch: its id alone on stdout (or JSON), the notes on stderr."""
    if out.mode == "table":
        out.line(accepted.batch_id)
    else:
        out.show(accepted, render.show_model)
    out.note(batch_notes(accepted))
    return 1 if accepted.total == 0 and accepted.coalesced == 0 else 0


async def bulk(client: ApiClient, out: Output, args: argparse.Namespace) -> int:
    """Start a bulk retrain of listed tenants or ``--all``; prints the batch id."""
    if args.kind and not args.all:
        raise CommandError("--kind needs --all")
    if args.all == bool(args.tenants):
        raise CommandError("give tenant ids or --all (not both)")
    body = BatchCreate(
        tenant_ids=args.tenants or None, all=args.all, target_kind=args.kind, reason=args.reason
    )
    return await _start_batch(client, out, body)


async def batches_list(client: ApiClient, out: Output, args: argparse.Namespace) -> int:
    """Recent bulk retrains, newest first."""
    page = await client.batches(args.limit)
    out.show_page(page, page.items, render.show_batches)
    out.note(f"{len(page.items)} shown of {page.total}")
    return 0


def _show_report(out: Output, report: BatchReport) -> None:
    if out.mode != "table":
        out.show(report, render.show_model)
        return
    render.show_batch(out.console, report.batch)
    if report.failed:
        out.line(f"failed or cancelled: {len(report.failed)}")
        render.show_failures(out.console, report.failed)


def _has_failures(status: BatchStatus) -> bool:
    return any(status.counts.get(state, 0) for state in FAILED_STATES)


async def batches_show(client: ApiClient, out: Output, args: argparse.Namespace) -> int:
    """A batch's progress and its failed runs with their reasons."""
    status = await client.batch(args.batch)
    failed = await failed_runs(client, args.batch) if _has_failures(status) else []
    _show_report(out, BatchReport(batch=status, failed=failed))
    return 0


async def batches_watch(client: ApiClient, out: Output, args: argparse.Namespace) -> int:
    """Follow a batch until every run ended; exit 1 if any failed or was cancelled."""
    status = await follow(client, out, args.batch, args.interval, args.give_up_after)
    failed: list[RunBrief] = []
    if _has_failures(status):
        failed = await ride_out(lambda: failed_runs(client, args.batch), out, args.give_up_after)
    _show_report(out, BatchReport(batch=status, failed=failed))
    return 1 if failed else 0


async def batches_retry_failed(client: ApiClient, out: Output, args: argparse.Namespace) -> int:
    """Bulk retrain the tenants whose runs in a batch failed (and, if asked, were cancelled)."""
    try:
        accepted = await client.retry_failed(args.batch, args.include_cancelled)
    except ApiError as exc:
        if exc.status != 409:  # 409: nothing left to retry, which is no error here
            raise
        out.note(f"{exc.detail}: nothing to retry")
        return 0
    return _started(out, accepted)


def _watch_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("batch")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between polls")
    parser.add_argument(
        "--give-up-after",
        type=float,
        default=300.0,
        help="seconds of API errors in a row to ride out before exiting (300)",
    )


def add_commands(subcommands: Subcommands, leaf: Leaf) -> None:
    """``retrain``, ``rollback``, ``runs``, ``bulk``, ``batches`` and ``watch``."""
    one = leaf(subcommands, "retrain", retrain, "retrain one tenant")
    one.add_argument("tenant")
    one.add_argument("--reason", default="manual")
    one.add_argument("--idempotency-key", help="repeat-safe key: the same key, the same run")
    leaf(subcommands, "rollback", rollback, "redeploy the previous model").add_argument("tenant")

    rgroup = group(subcommands, "runs", "list, show and cancel runs")
    listing = leaf(rgroup, "list", runs_list, "list runs, newest first")
    listing.add_argument(
        "--state", action="append", help="only this state (repeat for several), e.g. failed"
    )
    listing.add_argument("--tenant", help="only this tenant's runs")
    listing.add_argument("--batch", help="only this batch's runs")
    listing.add_argument("--since", help="created since: 30m, 2h, 7d or an ISO 8601 time")
    listing.add_argument("--limit", type=int, default=50, help="at most this many (50)")
    leaf(rgroup, "show", runs_show, "show a run").add_argument("run")
    leaf(rgroup, "cancel", runs_cancel, "cancel a run").add_argument("run")

    many = leaf(subcommands, "bulk", bulk, "bulk retrain listed tenants or --all")
    many.add_argument("tenants", nargs="*", metavar="TENANT")
    many.add_argument("--all", action="store_true", help="every tenant")
    many.add_argument("--kind", choices=TARGET_KINDS, help="with --all: only this kind")
    many.add_argument("--reason", default="bulk")

    bgroup = group(subcommands, "batches", "list, show, watch and retry bulk retrains")
    batches = leaf(bgroup, "list", batches_list, "recent bulk retrains")
    batches.add_argument("--limit", type=int, default=20)
    leaf(bgroup, "show", batches_show, "a batch's progress and failures").add_argument("batch")
    watch_help = "follow a batch to its end; exit 1 if any run failed or was cancelled"
    _watch_flags(leaf(bgroup, "watch", batches_watch, watch_help))
    retry = leaf(bgroup, "retry-failed", batches_retry_failed, "retrain a batch's failed tenants")
    retry.add_argument("batch")
    retry.add_argument("--include-cancelled", action="store_true", help="cancelled runs too")
    _watch_flags(leaf(subcommands, "watch", batches_watch, f"{watch_help} (batches watch)"))
