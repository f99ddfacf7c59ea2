"""ARM request budgets of the v2 surfaces: a token bucket per principal and operation type.

ARM throttles per subscription, per principal and per operation type with token buckets
(shared/PROTOCOL-V2 §5.2: reads 250 with 25 refilled per second, writes and deletes 200 with
10). Every accepted ARM call takes one token and its answer carries what is left in
``x-ms-ratelimit-remaining-subscription-{reads|writes|deletes}``; a call that finds its bucket
empty is not processed and answers 429 ``TooManyRequests`` with ``Retry-After``, the whole
seconds until a token is back. A bucket that refills at 0 per second stays empty, which tests
use to see exactly where a client stops.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, Field

from emulator.errors import ApiError

Operation = Literal["reads", "writes", "deletes"]
HEADER = "x-ms-ratelimit-remaining-subscription-{}"
# Retry-After when a bucket never refills: long enough that no client should wait it out.
NEVER_SECONDS = 3600


class BucketConfig(BaseModel):
    """One bucket: how many calls it holds and how many come back per second."""

    capacity: int = Field(ge=1, le=1_000_000)
    per_second: float = Field(ge=0, le=1_000_000)


class ThrottleConfig(BaseModel):
    """The buckets of every principal (the documented ARM numbers by default)."""

    enabled: bool = True
    reads: BucketConfig = BucketConfig(capacity=250, per_second=25)
    writes: BucketConfig = BucketConfig(capacity=200, per_second=10)
    deletes: BucketConfig = BucketConfig(capacity=200, per_second=10)

    def bucket(self, operation: Operation) -> BucketConfig:
        """The bucket configuration of one operation type."""
        config: BucketConfig = getattr(self, operation)
        return config


def operation_of(method: str) -> Operation:
    """The ARM operation type of an HTTP method (POST actions count as writes)."""
    if method in ("GET", "HEAD"):
        return "reads"
    if method == "DELETE":
        return "deletes"
    return "writes"


@dataclass
class Bucket:
    """Tokens left and when they were last counted."""

    tokens: float
    at: float

    def take(self, config: BucketConfig, now: float) -> float | None:
        """Take one token; ``None`` when taken, else the seconds until one is back."""
        self.tokens = min(config.capacity, self.tokens + (now - self.at) * config.per_second)
        self.at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return None
        if config.per_second <= 0:
            return NEVER_SECONDS
        return (1 - self.tokens) / config.per_second


class Throttle:
    """The live buckets, keyed by (principal, operation), and what they refused."""

    def __init__(self, config: ThrottleConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.configure(config)

    def configure(self, config: ThrottleConfig) -> None:
        """Replace the configuration; every bucket starts full again."""
        self.config = config
        self.buckets: dict[tuple[str, Operation], Bucket] = {}
        self.taken: dict[Operation, int] = {"reads": 0, "writes": 0, "deletes": 0}
        self.refused: dict[Operation, int] = {"reads": 0, "writes": 0, "deletes": 0}

    def take(self, token: str, method: str) -> dict[str, str]:
        """Count one call of the principal behind ``token``: its rate-limit header, or 429."""
        operation = operation_of(method)
        if not self.config.enabled:
            self.taken[operation] += 1
            return {}
        config = self.config.bucket(operation)
        principal = hashlib.sha256(token.encode()).hexdigest()[:16]
        now = self.clock()
        bucket = self.buckets.setdefault((principal, operation), Bucket(config.capacity, now))
        wait = bucket.take(config, now)
        header = HEADER.format(operation)
        if wait is not None:
            self.refused[operation] += 1
            raise ApiError(
                429,
                "TooManyRequests",
                f"The number of {operation} requests for this principal exceeded the limit; "
                "retry after the time in the Retry-After header.",
                "SubscriptionRequestsThrottled",
                headers={"Retry-After": str(max(1, math.ceil(wait))), header: "0"},
            )
        self.taken[operation] += 1
        return {header: str(int(bucket.tokens))}

    def snapshot(self) -> dict[str, object]:
        """Configuration and counters for the admin routes."""
        return {
            "config": self.config.model_dump(mode="json"),
            "taken": dict(self.taken),
            "refused": dict(self.refused),
        }
