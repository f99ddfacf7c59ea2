"""The CLI's API commands: settings, the shared runner and flags, and their registration.

The API URL and key come from ``--api-url``/``--api-key``, else the environment
(``RETRAINQ_API_URL``/``RETRAINQ_API_KEY``), else ``.env``, else ``.stack/env`` written by
``retrainq dev up``. The commands themselves live in ``tenant_commands`` and ``run_commands``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from pathlib import Path

import aiohttp
from pydantic import SecretStr, ValidationError
from yarl import URL

from producer.cli import hints, run_commands, tenant_commands
from producer.cli.base import Command, CommandError, Subcommands
from producer.cli.client import ApiClient, ApiError
from producer.cli.output import MODES, Output
from producer.cli.settings import CliSettings
from producer.devtools.devstack import DEFAULT_STATE_DIR
from worker.settings import describe_validation_error

__all__ = ["CommandError", "add_api_commands", "check_api_url", "cli_settings"]
SUGGEST_FROM_TENANTS = 2000


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


async def _suggest_tenants(client: ApiClient, exc: ApiError) -> ApiError:
    """A 404 on a tenant id, with the ids that look like it (when the key may list tenants)."""
    wanted = hints.unknown_tenant(exc.detail) if exc.status == 404 else None
    if wanted is None:
        return exc
    known: list[str] = []
    try:
        while len(known) < SUGGEST_FROM_TENANTS:
            page = await client.list_tenants(500, len(known))
            known += [tenant.id for tenant in page.items]
            if page.next_offset is None:
                break
    except ApiError:  # a tenant key may not list tenants: no suggestions then
        return exc
    return ApiError(
        exc.status, exc.title, exc.detail + hints.did_you_mean(hints.close_ids(wanted, known))
    )


async def _session_run(command: Command, args: argparse.Namespace, settings: CliSettings) -> int:
    timeout = aiohttp.ClientTimeout(total=args.timeout_seconds)
    out = Output(mode=getattr(args, "output", "table"))
    async with aiohttp.ClientSession(timeout=timeout) as session:
        client = ApiClient(settings.api_url, settings.api_key, session)
        try:
            return await command(client, out, args)
        except ApiError as exc:
            raise await _suggest_tenants(client, exc) from exc


def _runner(command: Command) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        settings = cli_settings(args)
        try:
            return asyncio.run(_session_run(command, args, settings))
        except ApiError as exc:
            print(f"retrainq: {hints.in_cli_terms(str(exc))}", file=sys.stderr)
            return 2 if exc.status == 0 else 1
        except ValidationError as exc:
            raise CommandError(describe_validation_error(exc)) from exc
        except TimeoutError as exc:
            raise CommandError(
                f"timed out after {args.timeout_seconds:g}s waiting for the API at "
                f"{settings.api_url}"
            ) from exc

    return run


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--api-url", help="API base URL (default RETRAINQ_API_URL or .stack/env)")
    common.add_argument("--api-key", help="API key (default RETRAINQ_API_KEY or .stack/env)")
    add_output_flags(common, default=argparse.SUPPRESS)
    common.add_argument("--timeout-seconds", type=float, default=60.0, help=argparse.SUPPRESS)
    return common


def add_output_flags(parser: argparse.ArgumentParser, default: object) -> None:
    """``-o table|json|jsonl`` and ``--json`` (same as ``-o json``).

    The top-level parser holds the default; commands leave the value alone unless given, so
    ``retrainq -o json runs list`` and ``retrainq runs list -o json`` both work.
    """
    parser.add_argument(
        "-o",
        "--output",
        choices=MODES,
        default=default,
        help="table (default) for people, json or jsonl (one object a line) for scripts",
    )
    parser.add_argument(
        "--json",
        dest="output",
        action="store_const",
        const="json",
        default=argparse.SUPPRESS,
        help="same as -o json",
    )


def add_api_commands(subcommands: Subcommands) -> None:
    """Add the API commands to the ``retrainq`` parser."""
    common = [_common()]

    def leaf(
        group: Subcommands, name: str, command: Command, help_: str
    ) -> argparse.ArgumentParser:
        parser = group.add_parser(name, parents=common, help=help_, description=command.__doc__)
        parser.set_defaults(handler=_runner(command))
        return parser

    tenant_commands.add_commands(subcommands, leaf)
    run_commands.add_commands(subcommands, leaf)
