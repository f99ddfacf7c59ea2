"""The CLI's API commands: tenants, data, retrain, bulk, watch, runs, rollback.

The API URL and key come from ``--api-url``/``--api-key``, else the environment
(``RETRAINQ_API_URL``/``RETRAINQ_API_KEY``), else ``.env``, else ``.stack/env`` written by
``retrainq dev up``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
from pydantic import SecretStr, ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from yarl import URL

from producer.cli import render
from producer.cli.client import ApiClient, ApiError
from producer.cli.settings import CliSettings
from producer.devtools.devstack import DEFAULT_STATE_DIR
from producer.schemas import BatchAccepted, BatchCreate, TenantCreate
from worker.schemas import ClassicTarget, NewServiceTarget, Target
from worker.settings import describe_validation_error

Command = Callable[[ApiClient, Console, argparse.Namespace], Awaitable[int]]
FAILED_STATES = ("failed", "cancelled")


class CommandError(Exception):
    """A command cannot run as asked (bad arguments, missing settings or files)."""


def _given(value: str | None, flag: str) -> bool:
    """Whether ``flag`` was given; given but blank is an error, not a fall back to settings."""
    if value is None:
        return False
    if not value.strip():
        raise CommandError(f"{flag} is empty")
    return True


def check_api_url(url: str) -> None:
    """Raise a CommandError unless ``url`` is ``http(s)://host[:port][/path]``."""
    try:
        parsed = URL(url)
        valid = parsed.scheme in ("http", "https") and bool(parsed.host)
    except ValueError:  # yarl rejects some malformed URLs (bad port, broken IPv6) outright
        valid = False
    if not valid:
        raise CommandError(f"invalid API URL {url!r}: expected http(s)://host[:port]")


def cli_settings(args: argparse.Namespace, state_dir: Path = DEFAULT_STATE_DIR) -> CliSettings:
    """Settings from flags, then the environment, ``.env`` and the dev stack's ``.stack/env``."""
    overrides: dict[str, object] = {}
    if _given(args.api_url, "--api-url"):
        overrides["api_url"] = args.api_url
    if _given(args.api_key, "--api-key"):
        overrides["api_key"] = SecretStr(args.api_key)
    try:
        settings = CliSettings(_env_file=(".env", state_dir / "env"))
    except ValidationError as exc:  # a bad RETRAINQ_* variable in the environment or an env file
        raise CommandError(describe_validation_error(exc)) from exc
    settings = settings.model_copy(update=overrides)
    check_api_url(settings.api_url)
    if not settings.api_key.get_secret_value():
        raise CommandError(
            "no API key: pass --api-key, set RETRAINQ_API_KEY, or start 'retrainq dev up'"
        )
    return settings


async def _session_run(command: Command, args: argparse.Namespace, settings: CliSettings) -> int:
    console = Console(soft_wrap=True)
    timeout = aiohttp.ClientTimeout(total=args.timeout_seconds)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        client = ApiClient(settings.api_url, settings.api_key, session)
        return await command(client, console, args)


def _runner(command: Command) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        settings = cli_settings(args)
        try:
            return asyncio.run(_session_run(command, args, settings))
        except ApiError as exc:
            print(f"retrainq: {exc}", file=sys.stderr)
            return 2 if exc.status == 0 else 1
        except ValidationError as exc:
            raise CommandError(describe_validation_error(exc)) from exc
        except TimeoutError as exc:
            raise CommandError(
                f"timed out after {args.timeout_seconds:g}s waiting for the API at "
                f"{settings.api_url}"
            ) from exc

    return run


async def tenants_create(client: ApiClient, console: Console, args: argparse.Namespace) -> int:
    """Onboard a tenant; prints its API key once."""
    target: Target
    if args.classic:
        service, _, resource = args.classic.partition(":")
        if not service or not resource:
            raise CommandError("--classic takes WEB_SERVICE_ID:RESOURCE_NAME")
        target = ClassicTarget(web_service_id=service, resource_name=resource)
    else:
        target = NewServiceTarget(template_service=args.new)
    body = TenantCreate(
        id=args.tenant,
        display_name=args.name,
        target=target,
        training_service=args.service,
        data_path=args.data_path,
        train=not args.no_train,
    )
    created = await client.create_tenant(body)
    if args.json:
        render.show_json(console, created)
        return 0
    render.show_tenant(console, created.tenant)
    console.print(f"api key   {created.api_key}  (shown once; store it now)", highlight=False)
    if created.run is not None:
        console.print(f"first run {created.run.id} ({created.run.state.value})", highlight=False)
    elif not args.no_train:
        tenant = created.tenant.id
        console.print(
            "no first run: the tenant has no training data yet; upload it with "
            f"'retrainq data upload {tenant} FILE', then 'retrainq retrain {tenant}'",
            highlight=False,
        )
    return 0


async def tenants_list(client: ApiClient, console: Console, args: argparse.Namespace) -> int:
    """A page of tenants."""
    page = await client.list_tenants(args.limit, args.offset, args.kind)
    (render.show_json if args.json else render.show_tenants)(console, page)
    return 0


async def tenants_show(client: ApiClient, console: Console, args: argparse.Namespace) -> int:
    """One tenant."""
    tenant = await client.get_tenant(args.tenant)
    (render.show_json if args.json else render.show_tenant)(console, tenant)
    return 0


async def data_upload(client: ApiClient, console: Console, args: argparse.Namespace) -> int:
    """Stream a CSV file as the tenant's next data version."""
    with args.file as stream:  # opened by argparse; aiohttp streams it in chunks
        uploaded = await client.upload(args.tenant, stream)
    if args.json:
        render.show_json(console, uploaded)
    else:
        console.print(
            f"uploaded {uploaded.size_bytes} bytes as data version {uploaded.data_version} "
            f"({uploaded.data_path}; columns: {', '.join(uploaded.columns)})",
            highlight=False,
        )
    return 0


async def retrain(client: ApiClient, console: Console, args: argparse.Namespace) -> int:
    """Retrain one tenant; prints the run (the active one when coalesced)."""
    accepted = await client.retrain(args.tenant, args.reason, args.idempotency_key)
    if args.json:
        render.show_json(console, accepted)
        return 0
    note = " (already active; coalesced)" if accepted.coalesced else ""
    console.print(f"run {accepted.run.id} {accepted.run.state.value}{note}", highlight=False)
    return 0


async def rollback(client: ApiClient, console: Console, args: argparse.Namespace) -> int:
    """Redeploy the tenant's previous model."""
    accepted = await client.rollback(args.tenant)
    if args.json:
        render.show_json(console, accepted)
    else:
        console.print(f"rollback run {accepted.run.id} -> {accepted.run.rollback_to}")
    return 0


async def bulk(client: ApiClient, console: Console, args: argparse.Namespace) -> int:
    """Start a bulk retrain; prints the batch id (alone on stdout unless --json).

    Exits 1 when the batch started nothing: no run queued and no tenant already running.
    """
    if args.kind and not args.all:
        raise CommandError("--kind needs --all")
    if args.all == bool(args.tenants):
        raise CommandError("give tenant ids or --all (not both)")
    body = BatchCreate(
        tenant_ids=args.tenants or None, all=args.all, target_kind=args.kind, reason=args.reason
    )
    accepted = await client.create_batch(body)
    if args.json:
        render.show_json(console, accepted)
    else:
        console.print(accepted.batch_id, highlight=False)
    started_nothing = accepted.total == 0 and accepted.coalesced == 0
    if started_nothing or not args.json:
        print(batch_notes(accepted), file=sys.stderr)
    return 1 if started_nothing else 0


def _count(number: int, singular: str, plural: str) -> str:
    return f"{number} {singular if number == 1 else plural}"


def batch_notes(accepted: BatchAccepted) -> str:
    """What a bulk retrain started, in one line: ``2 runs queued; 1 tenant already running ...``."""
    notes = [_count(accepted.total, "run", "runs") + " queued"]
    if accepted.coalesced:
        notes.append(
            _count(accepted.coalesced, "tenant", "tenants") + " already running (coalesced)"
        )
    if accepted.not_found:
        notes.append(f"unknown tenants: {', '.join(accepted.not_found[:10])}")
    return "; ".join(notes)


async def watch(client: ApiClient, console: Console, args: argparse.Namespace) -> int:
    """Show a batch's progress until every run ended; exit 1 if any failed or was cancelled."""
    status = await client.batch(args.batch)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, TimeElapsedColumn(), console=console) as progress:
        task = progress.add_task(
            render.batch_summary(status), total=status.total, completed=status.done
        )
        while status.done < status.total:
            await asyncio.sleep(args.interval)
            status = await client.batch(args.batch)
            progress.update(
                task,
                completed=status.done,
                total=status.total,
                description=render.batch_summary(status),
            )
    if args.json:
        render.show_json(console, status)
    else:
        console.print(f"batch {status.id} done: {render.batch_summary(status)}", highlight=False)
    return 1 if any(status.counts.get(s, 0) for s in FAILED_STATES) else 0


async def runs_show(client: ApiClient, console: Console, args: argparse.Namespace) -> int:
    """One run."""
    run = await client.run(args.run)
    (render.show_json if args.json else render.show_run)(console, run)
    return 0


async def runs_cancel(client: ApiClient, console: Console, args: argparse.Namespace) -> int:
    """Ask a run to stop."""
    run = await client.cancel(args.run)
    console.print(f"run {run.id}: cancel requested ({run.state.value})", highlight=False)
    return 0


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--api-url", help="API base URL (default RETRAINQ_API_URL or .stack/env)")
    common.add_argument("--api-key", help="API key (default RETRAINQ_API_KEY or .stack/env)")
    common.add_argument("--json", action="store_true", help="print JSON for scripts")
    common.add_argument("--timeout-seconds", type=float, default=60.0, help=argparse.SUPPRESS)
    return common


def add_api_commands(subcommands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the API commands to the ``retrainq`` parser."""
    common = [_common()]

    def leaf(
        group: argparse._SubParsersAction[argparse.ArgumentParser],
        name: str,
        command: Command,
        help_: str,
    ) -> argparse.ArgumentParser:
        parser = group.add_parser(name, parents=common, help=help_, description=command.__doc__)
        parser.set_defaults(handler=_runner(command))
        return parser

    tenants = subcommands.add_parser("tenants", help="onboard, list and show tenants")
    tgroup = tenants.add_subparsers(dest="tenants_command", required=True, metavar="ACTION")
    create = leaf(tgroup, "create", tenants_create, "onboard a tenant (prints its API key once)")
    create.add_argument("tenant", help="tenant id (lowercase letters, digits, hyphens)")
    where = create.add_mutually_exclusive_group(required=True)
    where.add_argument("--classic", metavar="WS_ID:RESOURCE", help="classic endpoint target")
    where.add_argument("--new", metavar="TEMPLATE", help="new web service from a template")
    create.add_argument("--name", default="", help="display name")
    create.add_argument("--service", default="default", help="training service")
    create.add_argument("--data-path", help="blob path of existing training data")
    create.add_argument("--no-train", action="store_true", help="do not start a first run")
    listing = leaf(tgroup, "list", tenants_list, "list tenants")
    listing.add_argument("--kind", choices=["classic", "new"])
    listing.add_argument("--limit", type=int, default=100)
    listing.add_argument("--offset", type=int, default=0)
    leaf(tgroup, "show", tenants_show, "show a tenant").add_argument("tenant")

    data = subcommands.add_parser("data", help="training data")
    dgroup = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    upload = leaf(dgroup, "upload", data_upload, "upload a training CSV")
    upload.add_argument("tenant")
    upload.add_argument("file", type=argparse.FileType("rb"), help="CSV file with a header")

    one = leaf(subcommands, "retrain", retrain, "retrain one tenant")
    one.add_argument("tenant")
    one.add_argument("--reason", default="manual")
    one.add_argument("--idempotency-key", help="repeat-safe key: the same key, the same run")
    leaf(subcommands, "rollback", rollback, "redeploy the previous model").add_argument("tenant")

    many = leaf(subcommands, "bulk", bulk, "bulk retrain listed tenants or --all")
    many.add_argument("tenants", nargs="*", metavar="TENANT")
    many.add_argument("--all", action="store_true", help="every tenant")
    many.add_argument("--kind", choices=["classic", "new"], help="with --all: only this kind")
    many.add_argument("--reason", default="bulk")

    follow = leaf(
        subcommands,
        "watch",
        watch,
        "live progress of a batch; exits 0 when all ended, 1 if any failed or was cancelled",
    )
    follow.add_argument("batch")
    follow.add_argument("--interval", type=float, default=1.0, help="seconds between polls")

    runs = subcommands.add_parser("runs", help="show or cancel runs")
    rgroup = runs.add_subparsers(dest="runs_command", required=True, metavar="ACTION")
    leaf(rgroup, "show", runs_show, "show a run").add_argument("run")
    leaf(rgroup, "cancel", runs_cancel, "cancel a run").add_argument("run")
