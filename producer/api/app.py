"""The enqueue API (``retrainq-api``): application factory, health routes and entry point."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta

import redis.asyncio as aioredis
import structlog
from aiohttp import web
from arq.connections import ArqRedis
from pydantic import ValidationError

from producer.api import (
    routes_docs,
    routes_erase,
    routes_fleet,
    routes_runs,
    routes_schedules,
    routes_tenants,
)
from producer.api.auth import FAILED_AUTH, auth_middleware, failed_auth_limits
from producer.api.http import header_middleware
from producer.api.idempotency import IDEMPOTENCY, idempotency_middleware
from producer.api.metrics import API_METRICS, metrics, metrics_middleware
from producer.api.openapi import build_openapi
from producer.api.preflight import VERIFICATIONS, preflight_ctx
from producer.api.problems import problem_middleware
from producer.api.server import serve
from producer.api.settings import ApiSettings
from producer.api.state import BLOBS, QUEUE, REDIS, SCHEDULES, SETTINGS, STORE
from worker.blobs import BlobStore, BlobStoreError
from worker.idempotency import IdempotencyRecords
from worker.keys import Keys
from worker.logs import configure_logging
from worker.queue import StepQueue
from worker.ratelimits import FailedAuthCounters
from worker.schedules import Schedules
from worker.serialization import deserialize, serialize
from worker.settings import describe_validation_error
from worker.store import Store
from worker.verification import Verifications

__all__ = ["REDIS", "SETTINGS", "create_app", "main"]

OPENAPI = web.AppKey("openapi", bytes)
REDIS_MAX_CONNECTIONS = 512

log = structlog.get_logger(__name__)


async def healthz(_request: web.Request) -> web.Response:
    """Liveness: the process serves HTTP."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Readiness: Redis answers."""
    try:
        await request.app[REDIS].ping()
    except (aioredis.RedisError, OSError):
        return web.json_response(
            {"status": "unavailable", "reason": "redis unreachable"},
            status=503,
            headers={"Retry-After": "5"},
        )
    return web.json_response({"status": "ok"})


async def openapi(request: web.Request) -> web.Response:
    """``GET /openapi.json``: the OpenAPI 3.1 document."""
    return web.Response(body=request.app[OPENAPI], content_type="application/json")


async def _redis_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    url = settings.redis.url.get_secret_value()
    timeout = settings.redis_timeout_seconds
    # Blocking pools connect outside their lock. The default pool holds its lock through a new
    # connection's handshake, so with Redis silent every request waited for the ones before it
    # (five at once answered 503 after 2, 4, 6, 8 and 10 s); now each waits one timeout.
    limits = {
        "max_connections": REDIS_MAX_CONNECTIONS,
        "timeout": timeout,
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
    }
    client = aioredis.Redis.from_pool(
        aioredis.BlockingConnectionPool.from_url(url, decode_responses=True, **limits)
    )
    # No ping at startup: the API starts (and answers 503) while Redis is down.
    pool = ArqRedis(
        aioredis.BlockingConnectionPool.from_url(url, **limits),
        job_serializer=serialize,
        job_deserializer=deserialize,
        default_queue_name=settings.redis.queue_name,
    )
    keys = Keys(settings.redis.prefix)
    app[REDIS] = client
    app[STORE] = Store(
        client,
        keys,
        run_timeout=timedelta(seconds=settings.run_timeout_seconds),
        bulk_order=settings.bulk_order,
    )
    app[FAILED_AUTH] = FailedAuthCounters(client, keys, failed_auth_limits(settings))
    app[IDEMPOTENCY] = IdempotencyRecords(client, keys)
    app[VERIFICATIONS] = Verifications(client, keys)
    app[QUEUE] = StepQueue(pool, settings.redis.queue_name)
    app[SCHEDULES] = Schedules(client, app[STORE], app[QUEUE], app[SETTINGS].training_services)
    yield
    await pool.aclose()
    await client.aclose()


async def _blobs_ctx(app: web.Application) -> AsyncIterator[None]:
    blobs = BlobStore.from_config(app[SETTINGS].blob)
    app[BLOBS] = blobs
    try:
        await blobs.ensure_container()
    except BlobStoreError as exc:
        log.warning("api.blob_container_unavailable", error=str(exc))
    yield
    await blobs.close()


def create_app(settings: ApiSettings) -> web.Application:
    """Build the API application for ``settings``."""
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[
            metrics_middleware,
            problem_middleware,
            header_middleware,
            auth_middleware,
            idempotency_middleware,
        ],
    )
    app[SETTINGS] = settings
    API_METRICS.auth_limits.labels("per_address").set(settings.failed_auth_per_address)
    API_METRICS.auth_limits.labels("per_key_prefix").set(settings.failed_auth_per_key_prefix)
    API_METRICS.auth_limits.labels("window_seconds").set(settings.failed_auth_window_seconds)
    app[OPENAPI] = json.dumps(build_openapi()).encode()
    app.cleanup_ctx.append(_redis_ctx)
    app.cleanup_ctx.append(_blobs_ctx)
    app.cleanup_ctx.append(preflight_ctx)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/openapi.json", openapi)
    routes_tenants.add_routes(app)
    routes_erase.add_routes(app)
    routes_runs.add_routes(app)
    routes_schedules.add_routes(app)
    routes_fleet.add_routes(app)
    routes_docs.add_routes(app)
    return app


def create_metrics_app() -> web.Application:
    """The API's ``/metrics`` (Prometheus), served on ``metrics_port``, apart from the API."""
    app = web.Application()
    app.router.add_get("/metrics", metrics)
    return app


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``retrainq-api``."""
    parser = argparse.ArgumentParser(
        prog="retrainq-api", description="Serve the retrainq enqueue API."
    )
    parser.add_argument("--host", help="address to bind (default from RETRAINQ_HOST)")
    parser.add_argument("--port", type=int, help="port (default from RETRAINQ_PORT)")
    parser.add_argument(
        "--metrics-port", type=int, help="port of /metrics (default from RETRAINQ_METRICS_PORT)"
    )
    args = parser.parse_args(argv)
    given = (("host", args.host), ("port", args.port), ("metrics_port", args.metrics_port))
    overrides = {k: v for k, v in given if v is not None}
    try:
        settings = ApiSettings(**overrides)
    except ValidationError as exc:
        print(f"retrainq-api: {describe_validation_error(exc)}", file=sys.stderr)
        return 2
    configure_logging(settings.log)
    log.info("api.starting", host=settings.host, port=settings.port)
    app, metrics_app = create_app(settings), create_metrics_app()
    try:
        with contextlib.suppress(web.GracefulExit, KeyboardInterrupt):
            asyncio.run(
                serve(app, metrics_app, settings.host, settings.port, settings.metrics_port)
            )
    except OSError as exc:  # a port taken or not bindable: one line, no traceback
        log.error("api.failed", error=str(exc), error_type=type(exc).__name__)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
