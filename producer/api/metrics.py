"""Prometheus metrics of the API (route templates as labels, never tenant ids)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from producer.api.problems import Handler


@dataclass(frozen=True)
class ApiMetrics:
    """Every metric the API exports."""

    requests: Counter
    latency: Histogram
    runs_enqueued: Counter
    auth_failures: Counter
    auth_limited: Counter
    auth_limits: Gauge


API_METRICS = ApiMetrics(
    requests=Counter(
        "retrainq_api_requests_total", "API requests by route and status", ["route", "status"]
    ),
    latency=Histogram(
        "retrainq_api_request_seconds",
        "API request latency by route",
        ["route"],
        buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
    ),
    runs_enqueued=Counter("retrainq_api_runs_enqueued_total", "Runs created by lane", ["lane"]),
    auth_failures=Counter(
        "retrainq_api_auth_failures_total", "Requests refused 401 (missing, malformed, unknown key)"
    ),
    auth_limited=Counter(
        "retrainq_api_auth_limited_total", "Requests refused 429 after too many failed logins"
    ),
    auth_limits=Gauge(
        "retrainq_api_failed_auth_limit",
        "Failed authentications allowed per window (per address, per key prefix; window: s)",
        ["limit"],
    ),
)


def _route(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count and time every request by route template and status."""
    started = time.perf_counter()
    response = await handler(request)
    route = _route(request)
    API_METRICS.latency.labels(route).observe(time.perf_counter() - started)
    API_METRICS.requests.labels(route, str(response.status)).inc()
    return response


async def metrics(_request: web.Request) -> web.Response:
    """``GET /metrics``: Prometheus text exposition."""
    return web.Response(
        body=generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST}
    )
