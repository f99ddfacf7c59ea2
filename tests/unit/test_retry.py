"""The retry policy: backoff with jitter, and retries only for idempotent calls."""

from __future__ import annotations

import random

import pytest
from structlog.testing import capture_logs

from worker.azureml.errors import PermanentError, ThrottledError, TransientError
from worker.azureml.retry import RetryPolicy, with_retries


class Flaky:
    """A call that fails with the given errors, then answers ``"ok"``; counts its tries."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


class Sleeps:
    """Records requested sleeps instead of sleeping."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


def _transient() -> TransientError:
    return TransientError("boom", method="GET", url="http://x/", status=502)


def test_backoff_without_jitter_doubles_up_to_the_cap() -> None:
    """jitter=0 gives base * 2**(n-1), capped at max_delay."""
    policy = RetryPolicy(attempts=6, base_delay=0.5, max_delay=3.0, jitter=0.0)
    rng = random.Random(0)
    assert [policy.backoff(n, rng) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_full_jitter_stays_within_the_exponential_ceiling() -> None:
    """With full jitter each wait lies in [0, ceiling] and varies."""
    policy = RetryPolicy(attempts=5, base_delay=1.0, max_delay=4.0, jitter=1.0)
    rng = random.Random(1)
    samples = [policy.backoff(3, rng) for _ in range(500)]
    assert all(0.0 <= s <= 4.0 for s in samples)
    assert max(samples) - min(samples) > 2.0
    assert policy.backoff(10_000, rng) <= 4.0


def test_backoff_is_reproducible_with_a_seed() -> None:
    """The same seed yields the same waits."""
    policy = RetryPolicy(attempts=4)
    first, second = random.Random(3), random.Random(3)
    assert [policy.backoff(n, first) for n in (1, 2, 3)] == [
        policy.backoff(n, second) for n in (1, 2, 3)
    ]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"attempts": 0},
        {"base_delay": -1.0},
        {"base_delay": 2.0, "max_delay": 1.0},
        {"jitter": 1.5},
    ],
)
def test_policy_rejects_nonsense(kwargs: dict[str, float]) -> None:
    """Invalid policies fail when built, not when used."""
    with pytest.raises(ValueError, match=r"attempts|delay|jitter"):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]  # parametrized kwargs


async def test_idempotent_call_is_retried_until_it_succeeds() -> None:
    """Two transient failures, then success, with a three-try policy."""
    call, sleeps = Flaky(_transient(), _transient()), Sleeps()
    policy = RetryPolicy(attempts=3, base_delay=0.1, max_delay=1.0, jitter=0.0)
    with capture_logs() as logs:
        result = await with_retries(call, policy, idempotent=True, sleep=sleeps)
    assert result == "ok"
    assert call.calls == 3
    assert sleeps.delays == [0.1, 0.2]
    assert [e["event"] for e in logs] == ["azureml.retry", "azureml.retry"]
    assert logs[0]["status"] == 502


async def test_gives_up_after_the_last_attempt() -> None:
    """The last transient error reaches the caller after ``attempts`` tries."""
    call, sleeps = Flaky(_transient(), _transient(), _transient()), Sleeps()
    with pytest.raises(TransientError):
        await with_retries(call, RetryPolicy(attempts=2), idempotent=True, sleep=sleeps)
    assert call.calls == 2


async def test_non_idempotent_call_is_never_retried() -> None:
    """A BES submit that fails transiently raises at once: exactly one try."""
    call, sleeps = Flaky(_transient()), Sleeps()
    with pytest.raises(TransientError):
        await with_retries(call, RetryPolicy(attempts=5), idempotent=False, sleep=sleeps)
    assert call.calls == 1
    assert sleeps.delays == []


async def test_permanent_errors_are_not_retried() -> None:
    """A 400 is raised at once even for idempotent calls."""
    call = Flaky(PermanentError("bad", status=400))
    with pytest.raises(PermanentError):
        await with_retries(call, RetryPolicy(attempts=5), idempotent=True, sleep=Sleeps())
    assert call.calls == 1


async def test_retry_after_is_respected_as_a_minimum() -> None:
    """A throttle hint longer than the backoff is what the helper waits."""
    throttled = ThrottledError("slow down", status=429)
    throttled.retry_after = 0.75
    call, sleeps = Flaky(throttled), Sleeps()
    policy = RetryPolicy(attempts=2, base_delay=0.1, max_delay=1.0, jitter=0.0)
    assert await with_retries(call, policy, idempotent=True, sleep=sleeps) == "ok"
    assert sleeps.delays == [0.75]


async def test_retry_after_beyond_max_delay_goes_to_the_caller() -> None:
    """A hint longer than the policy allows is not slept through inside a step."""
    throttled = ThrottledError("slow down", status=503)
    throttled.retry_after = 30.0
    call, sleeps = Flaky(throttled), Sleeps()
    with pytest.raises(ThrottledError):
        await with_retries(call, RetryPolicy(attempts=5), idempotent=True, sleep=sleeps)
    assert call.calls == 1
    assert sleeps.delays == []


async def test_a_one_attempt_policy_tries_once() -> None:
    """attempts=1 makes even idempotent calls single-shot."""
    call = Flaky(_transient())
    with pytest.raises(TransientError):
        await with_retries(call, RetryPolicy(attempts=1), idempotent=True, sleep=Sleeps())
    assert call.calls == 1


async def test_real_sleep_is_used_by_default() -> None:
    """Without an injected sleep the helper really waits (briefly) and then succeeds."""
    call = Flaky(_transient())
    policy = RetryPolicy(attempts=2, base_delay=0.01, max_delay=0.01)
    assert await with_retries(call, policy, idempotent=True) == "ok"
