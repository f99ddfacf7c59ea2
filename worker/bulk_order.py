"""The bulk lane's order: the longest expected BES job first, from each tenant's recent jobs.

A fleet's jobs differ in length (a tenant with ten times the data trains ten times longer).
Started in arrival order, a long job that comes late ends long after the rest; started
longest first (LPT), the short ones fill the gaps at the end. The dispatcher hands a slot
to the lowest score of a waiting set, so a bulk run enters its set scored

    entered_ms - AGING * expected_ms

where ``expected`` is the median of the tenant's last few job durations on that training
service (``durations:{service}:tenants``, one hash per service: tenant id → ``"s1,s2,s3"``,
newest first), or, without any, the median of the service's recent jobs
(``durations:{service}``). With no history at all every run expects the same, and the order
is the age order. ``AGING`` bounds how long a run can be passed over: a run expected ``d``
seconds shorter than a newcomer goes after it only if it entered less than ``AGING * d``
seconds before it, so a batch's runs (created within seconds) are in LPT order while a run
that waits long enough is not overtaken forever. The interactive lane keeps its age order.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline

from worker.keys import Keys
from worker.run.model import Lane

BulkOrder = Literal["longest_first", "fifo"]
TENANT_DURATIONS_KEPT = 3
AGING = 10.0

# Push a duration onto a tenant's recent ones (newest first, ARGV[3] kept) in one step.
_RECORD = """
local kept, limit = {ARGV[2]}, tonumber(ARGV[3])
local old = redis.call('HGET', KEYS[1], ARGV[1])
if old then
  for value in string.gmatch(old, '[^,]+') do
    if #kept >= limit then break end
    kept[#kept + 1] = value
  end
end
redis.call('HSET', KEYS[1], ARGV[1], table.concat(kept, ','))
return #kept
"""


@dataclass(frozen=True)
class Waiting:
    """A run about to enter a waiting set: its training service, lane and tenant."""

    service: str
    lane: Lane
    tenant_id: str | None = None


def recent_of(value: str | None) -> list[float]:
    """A tenant's recent durations from their stored form (``"s1,s2,..."``)."""
    if not value:
        return []
    return [float(part) for part in value.split(",") if part]


def pushed(value: str | None, seconds: float, kept: int = TENANT_DURATIONS_KEPT) -> str:
    """The stored form after one more duration (what ``record_in``'s script writes)."""
    return ",".join([f"{seconds:.1f}", *(value.split(",") if value else [])][:kept])


def median(samples: Sequence[float]) -> float | None:
    """The median of ``samples``, or None when there are none."""
    return statistics.median(samples) if samples else None


def expected_seconds(recent: Sequence[float], service_median: float | None) -> float | None:
    """How long a tenant's next job is expected to last: its recent median, else the
    service's, else unknown."""
    own = median(recent)
    return own if own is not None else service_median


def bulk_score(entered_ms: int, expected: float | None) -> float:
    """A bulk run's waiting score: lower is granted first (see the module docstring)."""
    return entered_ms - AGING * 1000.0 * (expected or 0.0)


def record_in(pipe: Pipeline, keys: Keys, service: str, tenant_id: str, seconds: float) -> None:
    """Queue on ``pipe``: one more finished job of ``tenant_id`` on ``service``."""
    pipe.eval(
        _RECORD,
        1,
        keys.tenant_durations(service),
        tenant_id,
        f"{seconds:.1f}",
        str(TENANT_DURATIONS_KEPT),
    )


class WaitingOrder:
    """Scores of runs entering their lane's waiting set (the ledger writes them)."""

    def __init__(
        self, redis: aioredis.Redis, keys: Keys, order: BulkOrder = "longest_first"
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.order = order

    async def scores(self, entries: Sequence[Waiting], entered_ms: int) -> list[str]:
        """Each entry's score: its age for the interactive lane or in FIFO order, else
        longest expected first (one round trip for all of them)."""
        bulk = [e for e in entries if e.lane is Lane.BULK and e.tenant_id is not None]
        if self.order == "fifo" or not bulk:
            return [str(entered_ms)] * len(entries)
        services = sorted({e.service for e in bulk})
        async with self.redis.pipeline(transaction=False) as pipe:
            for service in services:
                pipe.lrange(self.keys.durations(service), 0, -1)
                pipe.hmget(
                    self.keys.tenant_durations(service),
                    [e.tenant_id for e in bulk if e.service == service],
                )
            replies = await pipe.execute()
        expected: dict[tuple[str, str | None], float | None] = {}
        for i, service in enumerate(services):
            samples, recent = replies[2 * i], replies[2 * i + 1]
            of_service = median([float(s) for s in samples])
            tenants = [e.tenant_id for e in bulk if e.service == service]
            for tenant_id, value in zip(tenants, recent, strict=True):
                expected[(service, tenant_id)] = expected_seconds(recent_of(value), of_service)
        return [
            f"{bulk_score(entered_ms, expected[(e.service, e.tenant_id)]):.0f}"
            if (e.service, e.tenant_id) in expected and e.lane is Lane.BULK
            else str(entered_ms)
            for e in entries
        ]
