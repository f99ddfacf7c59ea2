"""CLI commands about tenants: onboard, list, show, patch, offboard, data, gate and schedules."""

from __future__ import annotations

import argparse
import asyncio
import sys

from producer.cli import render
from producer.cli.base import CommandError, Leaf, Subcommands, group
from producer.cli.client import ApiClient
from producer.cli.importer import tenants_import
from producer.cli.output import Output
from producer.schemas import ScheduleBody, TenantCreate, TenantPatch
from worker.evaluate import Gate
from worker.schemas import TARGET_KINDS, ClassicTarget, NewServiceTarget, Target, V2PoolTarget


def parse_target(classic: str | None, new: str | None, pool: str | None = None) -> Target | None:
    """The target of ``--classic WS_ID:RESOURCE``, ``--new TEMPLATE`` or ``--v2-pool [POOL]``
    (an empty POOL: the pool with the most room), None if none."""
    if classic:
        service, _, resource = classic.partition(":")
        if not service or not resource:
            raise CommandError("--classic takes WEB_SERVICE_ID:RESOURCE_NAME")
        return ClassicTarget(web_service_id=service, resource_name=resource)
    if new:
        return NewServiceTarget(template_service=new)
    if pool is not None:
        return V2PoolTarget(pool=pool or None)
    return None


async def tenants_create(client: ApiClient, out: Output, args: argparse.Namespace) -> int:
    """Onboard a tenant; prints its API key once."""
    target = parse_target(args.classic, args.new, args.v2_pool)
    assert target is not None  # argparse requires --classic, --new or --v2-pool
    service = {"training_service": args.service} if args.service is not None else {}
    body = TenantCreate(
        id=args.tenant,
        display_name=args.name,
        target=target,
        data_path=args.data_path,
        train=not args.no_train,
        **service,
    )
    # A pool tenant without --service trains on its pool's service: the body names none.
    unnamed = args.service is None and isinstance(target, V2PoolTarget)
    include = set(TenantCreate.model_fields) - {"training_service"} if unnamed else None
    created = await client.create_tenant(body, include)
    if out.mode != "table":
        out.show(created, render.show_model)
        return 0
    render.show_tenant(out.console, created.tenant)
    out.line(f"api key   {created.api_key}  (shown once; store it now)")
    if created.run is not None:
        out.line(f"first run {created.run.id} ({created.run.state.value})")
    elif not args.no_train:
        tenant = created.tenant.id
        out.note(
            "no first run: the tenant has no training data yet; upload it with "
            f"'retrainq data upload {tenant} FILE', then 'retrainq retrain {tenant}'"
        )
    return 0


async def tenants_list(client: ApiClient, out: Output, args: argparse.Namespace) -> int:
    """A page of tenants."""
    page = await client.list_tenants(
        args.limit, args.offset, args.kind,
        state=args.state, prefix=args.prefix, sort=args.sort, cursor=args.cursor,
    )  # fmt: skip
    out.show_page(page, page.items, render.show_tenants)
    if page.next_cursor is not None:
        more = f"; next page: --cursor {page.next_cursor}"
    elif page.next_offset is not None:
        more = f"; next page: --offset {page.next_offset}"
    else:
        more = ""
    filtered = page.matched is not None and page.matched != page.total
    matched = f" ({page.matched} match)" if filtered else ""
    out.note(f"{len(page.items)} shown of {page.total}{matched}{more}")
    return 0


async def tenants_show(client: ApiClient, out: Output, args: argparse.Namespace) -> int:
    """One tenant."""
    out.show(await client.get_tenant(args.tenant), render.show_tenant)
    return 0


async def tenants_models(client: ApiClient, out: Output, args: argparse.Namespace) -> int:
    """A tenant's deployed versions, each with what its gate compared."""
    models = await client.models(args.tenant)
    out.show(models, render.show_models)
    if not models.history:
        out.note("no model deployed yet")
    return 0


def _parameters(pairs: list[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise CommandError(f"--param takes NAME=VALUE, not {pair!r}")
        params[name] = value
    return params


async def tenants_patch(client: ApiClient, out: Output, args: argparse.Namespace) -> int:
    """Change a tenant's name, target, training service, data path, parameters or schedule."""
    changes: dict[str, object] = {}
    if args.name is not None:
        changes["display_name"] = args.name
    target = parse_target(args.classic, args.new, args.v2_pool)
    if target is not None:
        changes["target"] = target
    if args.service is not None:
        changes["training_service"] = args.service
    if args.data_path is not None:
        changes["data_path"] = args.data_path
    if args.param is not None:
        changes["global_parameters"] = _parameters(args.param)
    if args.schedule is not None:
        changes["schedule"] = args.schedule
    if args.no_schedule:
        changes["schedule"] = None
    if not changes:
        raise CommandError("nothing to change: give at least one option (see --help)")
    tenant = await client.patch_tenant(args.tenant, TenantPatch.model_validate(changes))
    out.show(tenant, render.show_tenant)
    return 0


async def tenants_offboard(client: ApiClient, out: Output, args: argparse.Namespace) -> int:
    """Offboard a tenant: revoke its keys, cancel its active run, stop its schedule."""
    gone = await client.offboard(args.tenant, remove_remote=args.remove_remote)
    if out.mode != "table":
        out.show(gone, render.show_model)
        return 0
    out.line(f"offboarded {gone.tenant_id}")
    if gone.cancelled_run_id:
        out.line(f"cancel requested for run {gone.cancelled_run_id}")
    if gone.remote_removal:
        out.line("removal of its endpoint or web service requested")
    return 0


ERASED_KINDS = {
    "runs": "run records",
    "archived_index": "archive index entries",
    "model_history": "model-history entries",
    "redis_keys": "other Redis keys",
    "archive_parts": "archive parts",
    "data_blobs": "data blobs",
    "model_blobs": "model blobs",
}


def read_answer() -> str | None:
    """One line from stdin, or None at its end."""
    try:
        return input()
    except (EOFError, OSError):  # no input at all, or none readable (not a terminal)
        return None


def confirmed(tenant_id: str, answer: str | None) -> bool:
    """Whether the typed confirmation names the tenant."""
    return answer is not None and answer.strip() == tenant_id


async def tenants_erase(client: ApiClient, out: Output, args: argparse.Namespace) -> int:
    """Erase an offboarded tenant entirely (deletion requests); asks for its id unless --yes."""
    if not args.yes:
        print(
            f"Erase tenant {args.tenant} entirely: its records, archived runs, training data "
            "and models? This cannot be undone. Type its id to confirm: ",
            end="",
            file=sys.stderr,
            flush=True,
        )
        answer = await asyncio.to_thread(read_answer)
        if not confirmed(args.tenant, answer):
            raise CommandError(f"not confirmed: nothing of {args.tenant} was erased")
    erased = await client.erase(args.tenant)
    if out.mode != "table":
        out.show(erased, render.show_model)
        return 0
    out.line(f"erased {erased.tenant_id}")
    for field, label in ERASED_KINDS.items():
        out.line(f"  {label}: {getattr(erased, field)}")
    return 0


async def data_upload(client: ApiClient, out: Output, args: argparse.Namespace) -> int:
    """Stream a CSV file as the tenant's next data version."""
    with args.file as stream:  # opened by argparse; aiohttp streams it in chunks
        uploaded = await client.upload(args.tenant, stream)
    if out.mode != "table":
        out.show(uploaded, render.show_model)
        return 0
    out.line(
        f"uploaded {uploaded.size_bytes} bytes as data version {uploaded.data_version} "
        f"({uploaded.data_path}; columns: {', '.join(uploaded.columns)})"
    )
    return 0


async def gate_show(client: ApiClient, out: Output, args: argparse.Namespace) -> int:
    """The gate a tenant's new models must pass (the default when none is set)."""
    tenant = await client.get_tenant(args.tenant)
    gate = tenant.gate or Gate()
    out.show(gate, render.show_gate)
    if tenant.gate is None:
        out.note("no gate set: the default applies")
    return 0


GATE_FIELDS = (
    "metric", "direction", "threshold", "max_regression", "max_regression_absolute",
    "evaluation", "confidence",
)  # fmt: skip
CLEARABLE = ("threshold", "max_regression", "max_regression_absolute", "confidence")
HOLDOUT_FIELDS = {"holdout_fraction": "fraction", "min_holdout_rows": "min_rows",
                  "time_column": "time_column", "label": "label"}  # fmt: skip


def gate_changes(args: argparse.Namespace) -> tuple[dict[str, object], dict[str, object]]:
    """The gate fields and holdout fields a ``gate set`` command line changes."""
    changes: dict[str, object] = {
        name: getattr(args, name) for name in GATE_FIELDS if getattr(args, name) is not None
    }
    for name in CLEARABLE:
        if getattr(args, f"no_{name}"):
            changes[name] = None
    holdout: dict[str, object] = {
        field: getattr(args, option)
        for option, field in HOLDOUT_FIELDS.items()
        if getattr(args, option) is not None
    }
    return changes, holdout


async def gate_set(client: ApiClient, out: Output, args: argparse.Namespace) -> int:
    """Change the gate: given fields replace the current ones; ``--default`` clears it."""
    changes, holdout = gate_changes(args)
    if args.default == bool(changes or holdout):
        raise CommandError("give --default, or one or more gate fields (see --help)")
    gate: Gate | None = None
    if not args.default:
        current = (await client.get_tenant(args.tenant)).gate or Gate()
        fields = current.model_dump() | changes
        fields["holdout"] = current.holdout.model_dump() | holdout
        gate = Gate.model_validate(fields)
    tenant = await client.patch_tenant(args.tenant, TenantPatch(gate=gate))
    out.show(tenant.gate or Gate(), render.show_gate)
    return 0


async def schedules_list(client: ApiClient, out: Output, _args: argparse.Namespace) -> int:
    """Every schedule (fleet and tenant), soonest first."""
    page = await client.schedules()
    out.show_page(page, page.items, render.show_schedules)
    return 0


async def schedules_put(client: ApiClient, out: Output, args: argparse.Namespace) -> int:
    """Create or replace a fleet-wide schedule."""
    body = ScheduleBody(cron=args.cron, target_kind=args.kind)
    out.show(await client.put_schedule(args.name, body), render.show_schedule)
    return 0


async def schedules_delete(client: ApiClient, out: Output, args: argparse.Namespace) -> int:
    """Stop a fleet-wide schedule."""
    await client.delete_schedule(args.name)
    out.note(f"deleted schedule {args.name}")
    return 0


def _target_flags(parser: argparse.ArgumentParser, required: bool) -> None:
    where = parser.add_mutually_exclusive_group(required=required)
    where.add_argument("--classic", metavar="WS_ID:RESOURCE", help="classic endpoint target")
    where.add_argument("--new", metavar="TEMPLATE", help="new web service from a template")
    where.add_argument(
        "--v2-pool",
        nargs="?",
        const="",
        metavar="POOL",
        help="an Azure ML v2 serving pool (without POOL: the one with the most room)",
    )


def add_commands(subcommands: Subcommands, leaf: Leaf) -> None:
    """``tenants``, ``data``, ``gate`` and ``schedules``."""
    tgroup = group(subcommands, "tenants", "onboard, list, show, change and offboard tenants")
    create = leaf(tgroup, "create", tenants_create, "onboard a tenant (prints its API key once)")
    create.add_argument("tenant", help="tenant id (lowercase letters, digits, hyphens)")
    _target_flags(create, required=True)
    create.add_argument("--name", default="", help="display name")
    create.add_argument(
        "--service", help="training service (default: 'default', a pool tenant its pool's)"
    )
    create.add_argument("--data-path", help="blob path of existing training data")
    create.add_argument("--no-train", action="store_true", help="do not start a first run")
    listing = leaf(tgroup, "list", tenants_list, "list tenants")
    listing.add_argument("--kind", choices=TARGET_KINDS)
    listing.add_argument("--limit", type=int, default=100)
    listing.add_argument("--offset", type=int, default=0)
    listing.add_argument(
        "--state",
        help="model states, comma-separated: retraining, up_to_date, kept_previous, no_model",
    )
    listing.add_argument("--prefix", help="tenant ids starting with this")
    listing.add_argument(
        "--sort", help="created (default), id, state or metric; '-' first reverses: --sort=-id"
    )
    listing.add_argument("--cursor", help="continue where the previous page ended")
    leaf(tgroup, "show", tenants_show, "show a tenant").add_argument("tenant")
    models_help = (
        "a tenant's deployed versions: the deployed model and the candidate its gate compared"
    )
    leaf(tgroup, "models", tenants_models, models_help).add_argument("tenant")
    patch = leaf(tgroup, "patch", tenants_patch, "change a tenant (options left out stay)")
    patch.add_argument("tenant")
    _target_flags(patch, required=False)
    patch.add_argument("--name", help="display name")
    patch.add_argument("--service", help="training service")
    patch.add_argument("--data-path", help="blob path of the training data")
    patch.add_argument(
        "--param", action="append", metavar="NAME=VALUE", help="global parameter (replaces all)"
    )
    schedule = patch.add_mutually_exclusive_group()
    schedule.add_argument("--schedule", metavar="CRON", help="the tenant's own cron (UTC)")
    schedule.add_argument("--no-schedule", action="store_true", help="clear its schedule")
    offboard = leaf(tgroup, "offboard", tenants_offboard, "offboard a tenant (admin)")
    offboard.add_argument("tenant")
    offboard.add_argument(
        "--remove-remote", action="store_true", help="also delete its endpoint or web service"
    )
    erase = leaf(tgroup, "erase", tenants_erase, "erase an offboarded tenant entirely (admin)")
    erase.add_argument("tenant")
    erase.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    bulk_import = leaf(tgroup, "import", tenants_import, "onboard the tenants of a CSV file")
    bulk_import.add_argument("file", type=argparse.FileType("r", encoding="utf-8-sig"))
    bulk_import.add_argument("--concurrency", type=int, default=8, help="requests at once (8)")
    bulk_import.add_argument("--no-train", action="store_true", help="start no first runs")

    dgroup = group(subcommands, "data", "training data")
    upload = leaf(dgroup, "upload", data_upload, "upload a training CSV")
    upload.add_argument("tenant")
    upload.add_argument("file", type=argparse.FileType("rb"), help="CSV file with a header")

    ggroup = group(subcommands, "gate", "the gate new models must pass before deployment")
    leaf(ggroup, "show", gate_show, "show a tenant's gate").add_argument("tenant")
    gate = leaf(ggroup, "set", gate_set, "change a tenant's gate")
    gate.add_argument("tenant")
    gate.add_argument("--metric", help="Evaluate Model column, e.g. 'Mean Absolute Error'")
    gate.add_argument("--direction", choices=["higher_is_better", "lower_is_better"])
    gate.add_argument("--threshold", type=float, help="absolute bound the metric must meet")
    gate.add_argument("--no-threshold", action="store_true", help="no absolute bound")
    gate.add_argument(
        "--max-regression", type=float, help="fraction worse than the deployed model (0.1)"
    )
    gate.add_argument("--no-max-regression", action="store_true", help="no relative allowance")
    gate.add_argument(
        "--max-regression-absolute", type=float, help="allowance in the metric's own units"
    )
    gate.add_argument(
        "--no-max-regression-absolute", action="store_true", help="no absolute allowance"
    )
    gate.add_argument(
        "--evaluation",
        choices=["holdout", "reported"],
        help="holdout: both models scored on the same held-out rows; reported: the figures "
        "each model's own training reported",
    )
    gate.add_argument(
        "--holdout-fraction", type=float, help="share of the rows held out (holdout mode, 0.2)"
    )
    gate.add_argument(
        "--min-holdout-rows", type=int, help="fewer held-out rows than this: judged as reported"
    )
    gate.add_argument("--time-column", help="hold out the newest rows by this column")
    gate.add_argument("--label", help="the label column (default: the training service's)")
    gate.add_argument(
        "--confidence", type=float, help="also demand a bootstrap interval at this level (0.9)"
    )
    gate.add_argument("--no-confidence", action="store_true", help="no bootstrap interval")
    gate.add_argument("--default", action="store_true", help="clear it: the default applies")

    sgroup = group(subcommands, "schedules", "fleet-wide retrain schedules")
    leaf(sgroup, "list", schedules_list, "list schedules")
    put = leaf(sgroup, "put", schedules_put, "create or replace a fleet-wide schedule")
    put.add_argument("name", help="lowercase letters, digits, hyphens")
    put.add_argument("--cron", required=True, help="cron expression (UTC), e.g. '0 3 * * *'")
    put.add_argument("--kind", choices=TARGET_KINDS, help="only tenants of this kind")
    leaf(sgroup, "delete", schedules_delete, "delete a fleet-wide schedule").add_argument("name")
