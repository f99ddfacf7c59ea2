"""Builds the arq ``Worker`` for retrainq: functions, crons, serializer, lifecycle hooks."""

from __future__ import annotations

from typing import Any, TypedDict

from aiohttp import web
from arq.connections import RedisSettings
from arq.worker import Worker, func

from worker.health import start_health_server
from worker.serialization import deserialize, serialize
from worker.settings import WorkerSettings


class WorkerContext(TypedDict, total=False):
    """What arq's ``ctx`` holds for retrainq steps (plus arq's own job fields)."""

    settings: WorkerSettings
    health: web.AppRunner


async def ping(_ctx: dict[Any, Any], *_args: Any, **_kwargs: Any) -> str:
    """A no-op job used to check the worker end to end."""
    return "pong"


def build_worker(settings: WorkerSettings, *, burst: bool = False) -> Worker:
    """An arq worker configured from ``settings``."""

    async def on_startup(ctx: dict[str, Any]) -> None:
        ctx["settings"] = settings
        ctx["health"] = await start_health_server("0.0.0.0", settings.health_port)  # noqa: S104

    async def on_shutdown(ctx: dict[str, Any]) -> None:
        runner: web.AppRunner | None = ctx.get("health")
        if runner is not None:
            await runner.cleanup()

    return Worker(
        functions=[func(ping, name="ping")],
        redis_settings=RedisSettings.from_dsn(settings.redis.url.get_secret_value()),
        queue_name=settings.redis.queue_name,
        burst=burst,
        max_jobs=settings.max_jobs,
        job_timeout=settings.job_timeout_seconds,
        keep_result=0,
        on_startup=on_startup,
        on_shutdown=on_shutdown,
        health_check_interval=settings.health_check_interval_seconds,
        health_check_key=f"{settings.redis.queue_name}:health:{settings.pod_name}",
        job_serializer=serialize,
        job_deserializer=deserialize,
    )
