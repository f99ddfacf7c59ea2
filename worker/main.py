"""Entry point of ``retrainq-worker``: an arq worker plus a small health and metrics server."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

import structlog
from pydantic import ValidationError
from redis.exceptions import RedisError

from worker.blobs import BlobStoreError
from worker.datapath_audit import check_data_paths
from worker.logs import configure_logging
from worker.runtime import build_worker
from worker.settings import WorkerSettings, describe_validation_error

log = structlog.get_logger(__name__)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one worker process until SIGTERM/SIGINT (or until idle with ``--burst``)."""
    parser = argparse.ArgumentParser(
        prog="retrainq-worker", description="Advance retrain runs: BES jobs, gate, deploy."
    )
    parser.add_argument(
        "command",
        nargs="?",
        choices=["run", "check-data-paths"],
        default="run",
        help="run (default): serve steps; check-data-paths: list tenants whose data_path "
        "lies outside their own prefix and exit (1 if any)",
    )
    parser.add_argument("--health-port", type=int, help="port of /healthz and /metrics")
    parser.add_argument("--max-jobs", type=int, help="concurrent steps in this process")
    parser.add_argument("--burst", action="store_true", help="exit when the queue is empty")
    args = parser.parse_args(argv)
    overrides: dict[str, object] = {}
    if args.health_port is not None:
        overrides["health_port"] = args.health_port
    if args.max_jobs is not None:
        overrides["max_jobs"] = args.max_jobs
    try:
        settings = WorkerSettings(**overrides)  # type: ignore[arg-type]  # validated by pydantic
    except ValidationError as exc:
        print(f"retrainq-worker: {describe_validation_error(exc)}", file=sys.stderr)
        return 2
    if args.command == "check-data-paths":
        return _check_data_paths(settings)
    configure_logging(settings.log)
    log.info("worker.starting", pod=settings.pod_name, max_jobs=settings.max_jobs)
    worker = build_worker(settings, burst=args.burst)
    try:
        worker.run()
    except (RedisError, BlobStoreError, OSError) as exc:
        # Redis or blob storage unreachable at start (arq tries Redis 5 times, 1 s apart) or
        # lost beyond the retries: one line, exit 1, and the supervisor starts it again.
        log.error("worker.failed", error=str(exc), error_type=type(exc).__name__)
        return 1
    return 0


def _check_data_paths(settings: WorkerSettings) -> int:
    url = settings.redis.url.get_secret_value()
    try:
        return asyncio.run(
            check_data_paths(url, settings.redis.prefix, settings.shared_data_prefixes, sys.stdout)
        )
    except (RedisError, OSError) as exc:
        print(f"retrainq-worker: Redis unreachable ({type(exc).__name__})", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
