"""``retrainq doctor``: check every dependency the worker is configured for, and say how to fix it.

It reads the worker's settings (environment, ``.env``, ``.stack/env``) and makes one harmless
read per dependency: Redis ``PING``; a blob lookup in the container; for each BES endpoint of
each classic training service, the status of a job id that cannot exist (404 means the key was
accepted); for each Azure ML v2 training service, its workspace and datastore with the ARM
token (the datastore must be on the worker's blob container); the workspace's list of web
services with the management token; the resource group's list of web services with the ARM
token. Nothing is created, started or changed.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import redis.asyncio as aioredis
from azure.core.exceptions import ClientAuthenticationError
from pydantic import BaseModel, SecretStr, ValidationError
from rich.console import Console
from rich.table import Table

from producer.cli.base import CommandError
from producer.cli.output import Output
from producer.devtools.devstack import DEFAULT_STATE_DIR
from worker.azureml.arm import StaticToken, TokenProvider
from worker.azureml.bes import BesClient
from worker.azureml.errors import AzureMLError, NotFoundError
from worker.azureml.http import request_json
from worker.azureml.identity import AzureIdentityToken
from worker.azureml.retry import RetryPolicy
from worker.azureml_v2.workspace import look, missing_part, workspace_url
from worker.blobs import BlobStore, BlobStoreError
from worker.logs import configure_logging, redact_text
from worker.settings import (
    AzureMLConfig,
    AzureMLV2Config,
    LogConfig,
    WorkerSettings,
    describe_validation_error,
)

ARM_API_VERSION = "2017-01-01"
PROBE_JOB = "retrainqdoctorprobe"
ONE_TRY = RetryPolicy(attempts=1)
REGIONAL = (
    "management URLs are regional: https://management.azureml.net (South Central US), "
    "https://europewest.management.azureml.net, https://asiasoutheast.management.azureml.net"
)


class Check(BaseModel):
    """One dependency: what was checked, whether it answered as it should, and the fix."""

    check: str
    target: str
    ok: bool
    result: str
    fix: str = ""


def _refused(what: str, error: AzureMLError, fix_key: str) -> Check:
    """A failed Azure ML call as a check result, with the fix that fits its status."""
    if error.status in (401, 403):
        fix = f"the {what} was refused: {fix_key}"
    elif error.status == 404:
        fix = "not found: check the ids in the URL (see docs/AZURE.md)"
    elif error.status is None:
        fix = f"unreachable: check the URL and the network; {REGIONAL}"
    else:
        fix = "the service answered an error; try again, then see docs/AZURE.md"
    return Check(check="", target="", ok=False, result=str(error)[:160], fix=fix)


async def check_redis(settings: WorkerSettings) -> Check:
    """Redis answers PING."""
    client = aioredis.Redis.from_url(
        settings.redis.url.get_secret_value(), socket_timeout=3, socket_connect_timeout=3
    )
    target = redact_text(settings.redis.url.get_secret_value())
    try:
        await client.ping()
    except (aioredis.RedisError, OSError) as exc:
        fix = "start Redis, or set RETRAINQ_REDIS__URL (redis://[:password@]host:port/db)"
        return Check(check="redis", target=target, ok=False, result=redact_text(str(exc)), fix=fix)
    finally:
        await client.aclose()
    return Check(check="redis", target=target, ok=True, result="PONG")


async def check_blob(settings: WorkerSettings) -> Check:
    """The storage account accepts the connection string's key."""
    container = settings.blob.container
    try:
        async with BlobStore.from_config(settings.blob, retry_total=0) as blobs:
            await blobs.exists("doctor/probe.csv")
    except (BlobStoreError, ValueError) as exc:
        fix = (
            "check RETRAINQ_BLOB__CONNECTION_STRING (portal: storage account > Access keys > "
            "Connection string) and RETRAINQ_BLOB__CONTAINER"
        )
        result = redact_text(str(exc))[:160]
        return Check(check="blob storage", target=container, ok=False, result=result, fix=fix)
    return Check(check="blob storage", target=container, ok=True, result="key accepted")


async def check_bes(
    session: aiohttp.ClientSession,
    service: str,
    index: int,
    url: str,
    key: SecretStr,
    timeout_seconds: float,
) -> Check:
    """One BES endpoint accepts its API key (a made-up job id answers 404)."""
    name = f"BES {service} #{index}"
    client = BesClient(session, url, key, ONE_TRY, timeout_seconds=timeout_seconds)
    try:
        await client.status(PROBE_JOB)
    except NotFoundError:
        return Check(check=name, target=url, ok=True, result="key accepted")
    except AzureMLError as exc:
        failed = _refused(
            "API key",
            exc,
            "copy the endpoint's API key (Studio: web service > endpoint > API key) into "
            f"RETRAINQ_TRAINING_SERVICES['{service}'].endpoints[{index - 1}].api_key",
        )
        return failed.model_copy(update={"check": name, "target": url})
    return Check(check=name, target=url, ok=True, result="answered")


async def _list(
    session: aiohttp.ClientSession, url: str, token: SecretStr, timeout_seconds: float
) -> int:
    reply = await request_json(session, "GET", url, token=token, timeout_seconds=timeout_seconds)
    body = reply.body
    items = body.get("value", []) if isinstance(body, dict) else body
    return len(items) if isinstance(items, list) else 0


async def check_management(session: aiohttp.ClientSession, azureml: AzureMLConfig) -> Check:
    """The workspace token lists the workspace's web services."""
    url = f"{azureml.management_url.rstrip('/')}/workspaces/{azureml.workspace_id}/webservices"
    name = "management token"
    if not azureml.workspace_token.get_secret_value():
        fix = "set RETRAINQ_AZUREML__WORKSPACE_TOKEN (Studio: Settings > Authorization tokens)"
        return Check(check=name, target=url, ok=False, result="not set", fix=fix)
    try:
        count = await _list(session, url, azureml.workspace_token, azureml.request_timeout_seconds)
    except AzureMLError as exc:
        fix_key = (
            "copy the primary token of Studio: Settings > Authorization tokens into "
            "RETRAINQ_AZUREML__WORKSPACE_TOKEN; the workspace id is on Settings > Name"
        )
        return _refused("token", exc, fix_key).model_copy(update={"check": name, "target": url})
    return Check(check=name, target=url, ok=True, result=f"{count} web services")


NO_ARM_TOKEN = (
    "set RETRAINQ_AZUREML__ARM_TOKEN ('az account get-access-token --resource "
    "https://management.azure.com/'), or RETRAINQ_AZUREML__ARM_AUTH=azure_identity"
)


def arm_provider(azureml: AzureMLConfig) -> TokenProvider | None:
    """Where the worker's ARM tokens come from; ``None`` when no token is configured."""
    if azureml.arm_auth == "azure_identity":
        return AzureIdentityToken()
    if azureml.arm_token.get_secret_value():
        return StaticToken(azureml.arm_token)
    return None


async def check_arm(session: aiohttp.ClientSession, azureml: AzureMLConfig) -> Check:
    """The ARM token lists the resource group's Machine Learning web services."""
    url = (
        f"{azureml.arm_url.rstrip('/')}/subscriptions/{azureml.subscription_id}/resourceGroups/"
        f"{azureml.resource_group}/providers/Microsoft.MachineLearning/webServices"
        f"?api-version={ARM_API_VERSION}"
    )
    name = "ARM token"
    provider = arm_provider(azureml)
    if provider is None:
        return Check(check=name, target=url, ok=False, result="not set", fix=NO_ARM_TOKEN)
    try:
        token = await provider.token()
        count = await _list(session, url, token, azureml.request_timeout_seconds)
    except AzureMLError as exc:
        fix_key = (
            "get a fresh token (they last about an hour), with a role on the resource group "
            "that may read Microsoft.MachineLearning/webServices"
        )
        return _refused("token", exc, fix_key).model_copy(update={"check": name, "target": url})
    except ClientAuthenticationError as exc:  # azure-identity found no credential or login
        fix = "sign in ('az login') or configure a managed identity for azure_identity"
        return Check(check=name, target=url, ok=False, result=redact_text(str(exc))[:160], fix=fix)
    finally:
        if isinstance(provider, AzureIdentityToken):
            await provider.close()
    return Check(check=name, target=url, ok=True, result=f"{count} web services")


async def check_v2(
    session: aiohttp.ClientSession,
    service: str,
    config: AzureMLV2Config,
    settings: WorkerSettings,
) -> Check:
    """A v2 training service's workspace answers the ARM token and its datastore is there,
    on the worker's blob container."""
    name = f"v2 workspace {service}"
    base = workspace_url(settings.azureml.arm_url, config)
    provider = arm_provider(settings.azureml)
    if provider is None:
        return Check(check=name, target=base, ok=False, result="not set", fix=NO_ARM_TOKEN)
    prefix = f"RETRAINQ_TRAINING_SERVICES['{service}'].azureml_v2"
    try:
        facts = await look(
            session,
            settings.azureml.arm_url,
            config,
            await provider.token(),
            settings.azureml.request_timeout_seconds,
        )
    except NotFoundError as exc:
        missing = missing_part(exc.url)
        fix = (
            f"register an Azure Blob datastore {config.datastore!r} on container "
            f"{settings.blob.container!r} (docs/AZURE.md), or set {prefix}.datastore"
            if missing == "datastore"
            else f"check {prefix}.subscription_id, resource_group and workspace"
        )
        return Check(check=name, target=base, ok=False, result=f"{missing} not found", fix=fix)
    except AzureMLError as exc:
        fix_key = (
            "the worker's principal needs a role on the workspace that may read it and its "
            "datastores, and create and read jobs (docs/AZURE.md)"
        )
        return _refused("token", exc, fix_key).model_copy(update={"check": name, "target": base})
    except ClientAuthenticationError as exc:
        fix = "sign in ('az login') or configure a managed identity for azure_identity"
        return Check(check=name, target=base, ok=False, result=redact_text(str(exc))[:160], fix=fix)
    finally:
        if isinstance(provider, AzureIdentityToken):
            await provider.close()
    container = facts.container
    if container != settings.blob.container:
        fix = (
            f"the datastore must be on the worker's blob container {settings.blob.container!r}: "
            f"register one on it and set {prefix}.datastore"
        )
        result = f"datastore {config.datastore} is on container {container}"
        return Check(check=name, target=base, ok=False, result=result, fix=fix)
    result = f"workspace in {facts.location}, datastore {config.datastore} on {container}"
    return Check(check=name, target=base, ok=True, result=result)


async def run_checks(settings: WorkerSettings) -> list[Check]:
    """Every check, run concurrently, in a stable order."""
    timeout = settings.azureml.request_timeout_seconds
    async with aiohttp.ClientSession() as session:
        checks: list[Awaitable[Check]] = [check_redis(settings), check_blob(settings)]
        for service, config in sorted(settings.training_services.items()):
            if config.azureml_v2 is not None:  # its one "endpoint" is the workspace's slots
                checks.append(check_v2(session, service, config.azureml_v2, settings))
                continue
            for index, endpoint in enumerate(config.endpoints, start=1):
                checks.append(
                    check_bes(session, service, index, endpoint.url, endpoint.api_key, timeout)
                )
        checks += [
            check_management(session, settings.azureml),
            check_arm(session, settings.azureml),
        ]
        found = list(await asyncio.gather(*checks))
    if not settings.training_services:
        fix = "set RETRAINQ_TRAINING_SERVICES (see docs/AZURE.md)"
        found.insert(
            2,
            Check(
                check="training services", target="-", ok=False, result="none configured", fix=fix
            ),
        )
    return found


def show_checks(console: Console, checks: list[Check]) -> None:
    """The checks as a table: check, target, ok or FAIL with the result."""
    table = Table("check", "target", "result")
    for item in checks:
        mark = "ok" if item.ok else "FAIL"
        table.add_row(item.check, item.target, f"{mark}: {item.result}")
    console.print(table)


def load_settings(state_dir: Path = DEFAULT_STATE_DIR) -> WorkerSettings:
    """The worker's settings from the environment, ``.env`` and ``.stack/env``."""
    try:
        return WorkerSettings(_env_file=(".env", state_dir / "env"))
    except ValidationError as exc:
        raise CommandError(describe_validation_error(exc)) from exc


def doctor(
    args: argparse.Namespace, settings_loader: Callable[[], WorkerSettings] = load_settings
) -> int:
    """Run the checks; exit 1 if any failed."""
    out = Output(mode=args.output)
    # The Azure clients log each call; keep their lines off stdout, which holds only the table.
    configure_logging(LogConfig(format="console", level="WARNING"), out.stderr())
    checks = asyncio.run(run_checks(settings_loader()))
    if out.mode == "table":
        show_checks(out.console, checks)
        for item in checks:
            if not item.ok:
                out.line(f"fix {item.check}: {item.fix}")
    else:
        out.show_value([item.model_dump() for item in checks])
    failed = [item for item in checks if not item.ok]
    out.note(f"{len(checks) - len(failed)} of {len(checks)} checks passed")
    return 1 if failed else 0
