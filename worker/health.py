"""The worker's small HTTP server: ``/healthz`` and Prometheus ``/metrics``."""

from __future__ import annotations

import time

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

STARTED_AT = web.AppKey("started_at", float)


async def healthz(request: web.Request) -> web.Response:
    """Liveness of this worker process."""
    uptime = time.monotonic() - request.app[STARTED_AT]
    return web.json_response({"status": "ok", "uptime_seconds": round(uptime, 1)})


async def metrics(_request: web.Request) -> web.Response:
    """Prometheus exposition of this process's metrics."""
    body = generate_latest(REGISTRY)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def start_health_server(host: str, port: int) -> web.AppRunner:
    """Serve the health app on ``host:port``; the caller owns the runner and cleans it up."""
    app = web.Application()
    app[STARTED_AT] = time.monotonic()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
