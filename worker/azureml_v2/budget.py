"""The worker's mirror of its ARM request budget, kept from the answers' rate-limit headers.

ARM throttles each principal with a token bucket per operation type (shared/PROTOCOL-V2
§5.2: reads 250, refilled at 25 per second; writes and deletes 200 at 10). Every answer says
what is left (``x-ms-ratelimit-remaining-subscription-reads``, ``-writes``, ``-deletes``), and
a refused call answers 429 with ``Retry-After``. ``ArmBudget`` keeps one bucket estimate per
operation type: the last remaining count an answer gave, refilled at the documented rate
since, minus the calls sent since. A call waits (up to ``max_wait_seconds``) until its bucket
holds more than ``reserve``, the share left to the principal's other callers (other workers,
the API's preflights); a longer wait, or a ``Retry-After`` still running, fails the call at
once with ``ThrottledError`` instead of sending it: a step then reschedules itself and the
sweeper re-parks its runs. The estimate is a mirror, not the truth: every answer resets it.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from worker.azureml.errors import ThrottledError, parse_retry_after
from worker.settings import ArmBudgetConfig, BucketBudget

Operation = Literal["reads", "writes", "deletes"]
HEADER = "x-ms-ratelimit-remaining-subscription-{}"
# A 429 without Retry-After: wait this long before the next call of its kind.
DEFAULT_RETRY_AFTER = 1.0
# A wait that never ends (a bucket configured to refill at 0) is reported as this many s.
NEVER_SECONDS = 3600.0


def operation_of(method: str) -> Operation:
    """The ARM operation type of an HTTP method (POST actions count as writes)."""
    if method in ("GET", "HEAD"):
        return "reads"
    if method == "DELETE":
        return "deletes"
    return "writes"


@dataclass
class BucketMirror:
    """The estimate of one bucket: tokens at ``at`` (``None``: no answer seen, taken as full)
    and the end of a ``Retry-After``."""

    config: BucketBudget
    tokens: float | None = None
    at: float = 0.0
    blocked_until: float = 0.0

    def estimate(self, now: float) -> float:
        """Tokens the bucket holds now, by the last count and the refill since."""
        if self.tokens is None:
            return float(self.config.capacity)
        refilled = self.tokens + max(0.0, now - self.at) * self.config.per_second
        return min(float(self.config.capacity), refilled)

    def wait(self, now: float) -> float:
        """Seconds until a call may be sent (0: now)."""
        if now < self.blocked_until:
            return self.blocked_until - now
        missing = self.config.reserve + 1 - self.estimate(now)
        if missing <= 0:
            return 0.0
        if self.config.per_second <= 0:
            return NEVER_SECONDS
        return missing / self.config.per_second

    def spend(self, now: float) -> None:
        """Count one call sent now."""
        self.tokens = self.estimate(now) - 1
        self.at = now

    def observe(self, remaining: float, now: float) -> None:
        """An answer's count of what is left."""
        self.tokens = remaining
        self.at = now

    def refused(self, retry_after: float | None, now: float) -> None:
        """A 429: nothing is left, and nothing is sent before ``Retry-After`` has passed."""
        self.tokens = 0.0
        self.at = now
        wait = DEFAULT_RETRY_AFTER if retry_after is None else retry_after
        self.blocked_until = max(self.blocked_until, now + wait)


def remaining_of(headers: Mapping[str, str], operation: Operation) -> float | None:
    """The remaining count an answer's headers give for ``operation``, if any."""
    wanted = HEADER.format(operation)
    for name, value in headers.items():
        if name.lower() == wanted:
            try:
                number = float(value)
            except ValueError:
                return None
            return number if math.isfinite(number) and number >= 0 else None
    return None


def spent(operation: Operation, method: str, url: str, wait: float) -> ThrottledError:
    """The error of a call refused before it was sent: the budget needs ``wait`` seconds."""
    error = ThrottledError(
        f"ARM {operation} budget spent; next call in {wait:.1f} s",
        method=method,
        url=url,
        code="ArmBudgetSpent",
    )
    error.retry_after = wait
    return error


class ArmBudget:
    """The request budget of one principal in one subscription, shared by its v2 clients."""

    def __init__(
        self,
        config: ArmBudgetConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.config = config
        self.clock = clock
        self.sleep = sleep
        self.buckets: dict[Operation, BucketMirror] = {
            "reads": BucketMirror(config.reads),
            "writes": BucketMirror(config.writes),
            "deletes": BucketMirror(config.deletes),
        }
        self._locks: dict[Operation, asyncio.Lock] = {}

    def bucket(self, method: str) -> BucketMirror:
        """The bucket a call of ``method`` spends from."""
        return self.buckets[operation_of(method)]

    async def acquire(self, method: str, url: str) -> None:
        """Wait until a call may be sent and count it; ``ThrottledError`` when the wait (in
        line behind other callers, then for the bucket) would pass ``max_wait_seconds``
        (nothing is sent then)."""
        operation = operation_of(method)
        bucket = self.buckets[operation]
        limit = self.config.max_wait_seconds
        # One waiter at a time per bucket, so callers woken together do not overspend it;
        # the time in line counts against the same limit, so a burst fails fast instead of
        # queueing past its step's timeout.
        lock = self._locks.setdefault(operation, asyncio.Lock())
        began = self.clock()
        if lock.locked():
            try:
                await asyncio.wait_for(lock.acquire(), timeout=limit)
            except TimeoutError:
                raise spent(operation, method, url, limit) from None
        else:
            await lock.acquire()
        try:
            now = self.clock()
            wait = bucket.wait(now)
            if wait > limit - (now - began):
                raise spent(operation, method, url, wait)
            if wait > 0:
                await self.sleep(wait)
            bucket.spend(self.clock())
        finally:
            lock.release()

    def answered(self, method: str, headers: Mapping[str, str]) -> None:
        """Take the remaining count from an answer's headers."""
        operation = operation_of(method)
        remaining = remaining_of(headers, operation)
        if remaining is not None:
            self.buckets[operation].observe(remaining, self.clock())

    def refused(self, method: str, retry_after: str | float | None) -> None:
        """A 429 answer: pause calls of its kind for ``Retry-After``."""
        seconds = parse_retry_after(retry_after) if isinstance(retry_after, str) else retry_after
        self.bucket(method).refused(seconds, self.clock())
