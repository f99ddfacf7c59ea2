"""The retry policy as data, and the one helper that applies it to idempotent calls."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import structlog

from worker.azureml.errors import ThrottledError, TransientError

T = TypeVar("T")

log = structlog.get_logger()


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to repeat a call that failed transiently.

    ``attempts`` counts every try including the first. Before try ``n + 1`` the helper waits
    ``min(max_delay, base_delay * 2**(n - 1))`` of which the fraction ``jitter`` is random
    (1.0 is "full jitter": uniform between 0 and the exponential delay). A ``Retry-After``
    hint longer than ``max_delay`` is not slept through: the error goes to the caller, whose
    step reschedules itself rather than holding a worker slot.
    """

    attempts: int = 3
    base_delay: float = 0.2
    max_delay: float = 5.0
    jitter: float = 1.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")
        if self.base_delay < 0 or self.max_delay < self.base_delay:
            raise ValueError("need 0 <= base_delay <= max_delay")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError("jitter must be between 0 and 1")

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait after failed try number ``attempt`` (1-based)."""
        if attempt < 1:
            raise ValueError("attempt is 1-based")
        # Cap the exponent so huge attempt numbers cannot overflow a float.
        ceiling = min(self.max_delay, self.base_delay * 2.0 ** min(attempt - 1, 60))
        return ceiling * (1.0 - self.jitter * rng.random())


# Jitter only: seeded once per process, not per call (seeding reads os.urandom).
_JITTER = random.Random()

Sleep = Callable[[float], Awaitable[None]]


async def with_retries(
    call: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    idempotent: bool,
    rng: random.Random | None = None,
    sleep: Sleep = asyncio.sleep,
) -> T:
    """Await ``call()``; repeat it on ``TransientError`` only when the call is idempotent.

    Non-idempotent calls (BES submit) get exactly one try: a transient failure may have
    committed remotely, and only the caller can tell whether to try again.
    """
    chance = rng or _JITTER
    attempt = 1
    while True:
        try:
            return await call()
        except TransientError as error:
            if not idempotent or attempt >= policy.attempts:
                raise
            delay = policy.backoff(attempt, chance)
            if isinstance(error, ThrottledError) and error.retry_after is not None:
                if error.retry_after > policy.max_delay:
                    raise
                delay = max(delay, error.retry_after)
            log.info(
                "azureml.retry",
                attempt=attempt,
                delay=round(delay, 3),
                method=error.method,
                url=error.url,
                status=error.status,
                code=error.remote_code,
            )
            await sleep(delay)
            attempt += 1
