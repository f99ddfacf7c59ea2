"""The enqueue API (``retrainq-api``): application factory, health routes and entry point."""

from __future__ import annotations

import argparse
import sys
from collections.abc import AsyncIterator, Sequence

import redis.asyncio as aioredis
import structlog
from aiohttp import web

from producer.settings import ApiSettings
from worker.logs import configure_logging

SETTINGS = web.AppKey("settings", ApiSettings)
REDIS = web.AppKey("redis", aioredis.Redis)

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


async def _redis_ctx(app: web.Application) -> AsyncIterator[None]:
    url = app[SETTINGS].redis.url.get_secret_value()
    client = aioredis.Redis.from_url(url, decode_responses=True, socket_timeout=5)
    app[REDIS] = client
    yield
    await client.aclose()


def create_app(settings: ApiSettings) -> web.Application:
    """Build the API application for ``settings``."""
    app = web.Application(client_max_size=settings.max_body_bytes)
    app[SETTINGS] = settings
    app.cleanup_ctx.append(_redis_ctx)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``retrainq-api``."""
    parser = argparse.ArgumentParser(
        prog="retrainq-api", description="Serve the retrainq enqueue API."
    )
    parser.add_argument("--host", help="address to bind (default from RETRAINQ_HOST)")
    parser.add_argument("--port", type=int, help="port (default from RETRAINQ_PORT)")
    args = parser.parse_args(argv)
    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    settings = ApiSettings(**overrides)
    configure_logging(settings.log)
    log.info("api.starting", host=settings.host, port=settings.port)
    web.run_app(create_app(settings), host=settings.host, port=settings.port, print=None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
