"""retrainq's arq workers inside the test's event loop, driven the way arq's own tests drive
``Worker``: a burst worker runs until arq's queue is empty; a long-running one is a task the
test stops. Only the chaos and security suites start worker processes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from aiohttp import web
from arq.worker import Worker

from worker.runtime import build_worker
from worker.settings import WorkerSettings


@contextlib.contextmanager
def _environment(env: Mapping[str, str]) -> Iterator[None]:
    """``os.environ`` with ``env`` on top, as a worker process started with ``env`` sees it."""
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def settings_from(env: Mapping[str, str]) -> WorkerSettings:
    """The settings a worker process started with the ``RETRAINQ_*`` variables ``env`` reads."""
    with _environment(env):
        return WorkerSettings()


@dataclass
class LocalWorker:
    """One arq worker of retrainq running as a task of the test's event loop."""

    name: str
    settings: WorkerSettings
    arq: Worker
    task: asyncio.Task[None]

    @classmethod
    def start(cls, name: str, settings: WorkerSettings, *, burst: bool) -> LocalWorker:
        """Build the worker as ``retrainq-worker`` does and start its main loop."""
        arq = build_worker(settings, burst=burst)
        return cls(name, settings, arq, asyncio.create_task(arq.async_run(), name=name))

    @property
    def port(self) -> int:
        """Port of its ``/healthz`` and ``/metrics``, once started (the system picks it)."""
        runner: web.AppRunner = self.arq.ctx["health"]
        return int(runner.addresses[0][1])

    async def finished(self, within: float) -> None:
        """Wait until a burst worker has emptied the queue and returned; fail after ``within``."""
        started = time.monotonic()
        done, _ = await asyncio.wait([self.task], timeout=within)
        if not done:
            raise AssertionError(
                f"{self.name}: arq's queue not empty after {time.monotonic() - started:.0f}s"
            )
        self.task.result()  # re-raises what ended the worker, if it failed

    async def stop(self) -> None:
        """Stop as on a signal: cancel running steps, then run the worker's shutdown hooks."""
        if not self.task.done():
            self.arq.handle_sig(signal.SIGTERM)
        try:
            with contextlib.suppress(asyncio.CancelledError):
                await self.task  # re-raises what ended a worker that failed
        finally:
            # Steps cancelled before they began end cancelled; arq's close() would re-raise that.
            await asyncio.gather(*self.arq.tasks.values(), return_exceptions=True)
            self.arq.tasks.clear()
            await self.arq.close()
