"""Read models of the fleet: tenant counts, the load of each training service, the backlog.

The API's fleet routes and every worker's gauges read through these views, so the dashboard
and ``/metrics`` count the same things the same way, and the API never names a Redis key.

A BES slot is *in use* while its lease has not expired: a granted run is a member of its
service's slots set (and of one endpoint's) scored by its lease expiry. A lapsed lease stays
a member until the next dispatch sweeps it, but dispatch already counts it free against the
cap, so a count of every member (``ZCARD``) overstates the load in between. Both the service
and the endpoint counts here are of members scored after now, as dispatch sees them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from worker.keys import Keys
from worker.redisio import reply
from worker.schemas import Lane, RunState
from worker.settings import RetrainqSettings, TrainingServiceConfig
from worker.store import Store, now_ms
from worker.tenants import FleetPage

# A page of tenants is one Lua call (about 6 ms per 500 on a 2-core machine); the scan stops
# after MAX_SCANNED_TENANTS, and says how many it counted.
SCAN_CHUNK = 500
MAX_SCANNED_TENANTS = 200_000
HOUR_MS = 3_600_000
# The service a run names when the settings configure none (its waiting runs still count).
UNCONFIGURED_SERVICE = "default"
NO_KEY = -2  # PTTL of a missing key


@dataclass(frozen=True)
class FleetCounts:
    """Tenants by target kind and model state, and the runs created since the window start."""

    total: int
    scanned: int
    by_kind: dict[str, int]
    by_model_state: dict[str, int]
    recent: tuple[tuple[str, int], ...]  # (state, created ms) of each run

    def runs_by_state(self) -> dict[str, int]:
        """The recent runs counted by their current state."""
        return dict(Counter(state for state, _ in self.recent))


@dataclass(frozen=True)
class EndpointLoad:
    """Slots in use on one BES endpoint of a service, and its cap."""

    index: int
    in_use: int
    cap: int


@dataclass(frozen=True)
class ServiceLoad:
    """One training service: slots in use and per endpoint, its cap, runs waiting by lane,
    and how much longer dispatch stays paused after a 429/503 (None while not throttled)."""

    name: str
    in_use: int
    cap: int | None  # None: a service the settings do not configure
    endpoints: tuple[EndpointLoad, ...]
    waiting: Mapping[Lane, int]
    throttle_seconds: float | None

    @property
    def throttled(self) -> bool:
        """Whether dispatch of this service is paused."""
        return self.throttle_seconds is not None

    @property
    def waiting_total(self) -> int:
        """Runs waiting for a slot of this service, both lanes."""
        return sum(self.waiting.values())


@dataclass(frozen=True)
class Backlog:
    """arq's queue (steps runnable now, deferred ones), runs waiting for a slot, runs parked
    with the poll sweeper."""

    ready: int
    deferred: int
    waiting_slot: int
    parked: int

    def by_kind(self) -> dict[str, int]:
        """The counts by kind, as the ``retrainq_backlog`` gauge labels them."""
        return {
            "ready": self.ready,
            "deferred": self.deferred,
            "waiting_slot": self.waiting_slot,
            "parked": self.parked,
        }


@dataclass(frozen=True)
class Load:
    """The training services' load and the backlog, read in one round trip."""

    services: tuple[ServiceLoad, ...]
    backlog: Backlog

    @property
    def in_flight(self) -> int:
        """Slots in use across the services (runs whose BES job may be running)."""
        return sum(service.in_use for service in self.services)


def model_state(deployed: bool, latest_state: str | None) -> str:
    """The state of a tenant's model from whether one is deployed and its latest run's state."""
    if latest_state is not None and not RunState(latest_state).terminal:
        return "retraining"
    if not deployed:
        return "no_model"
    if latest_state in (None, RunState.SUCCEEDED.value):
        return "up_to_date"
    return "kept_previous"


def count_pages(total: int, pages: Iterable[FleetPage]) -> FleetCounts:
    """Fleet counts from pages of tenants read by ``fleet_page``."""
    by_kind: Counter[str] = Counter()
    by_state: Counter[str] = Counter()
    recent: list[tuple[str, int]] = []
    scanned = 0
    for page in pages:
        for tenant in page.tenants:
            by_kind[tenant.kind] += 1
            by_state[model_state(tenant.deployed, tenant.latest_state)] += 1
        recent += page.recent
        scanned += len(page.tenants)
    return FleetCounts(total, scanned, dict(by_kind), dict(by_state), tuple(recent))


def window_start(now: int, hours: int) -> int:
    """Start (ms) of the hour ``hours - 1`` hours before the one ``now`` is in."""
    return now - now % HOUR_MS - (hours - 1) * HOUR_MS


def runs_by_hour(
    recent: Iterable[tuple[str, int]], now: int, hours: int
) -> list[tuple[int, dict[str, int]]]:
    """(hour start ms, counts by state) of the runs created in each of the last ``hours``
    hours, oldest first."""
    first = window_start(now, hours)
    buckets: list[Counter[str]] = [Counter() for _ in range(hours)]
    for state, created in recent:
        index = (created - first) // HOUR_MS
        if 0 <= index < hours:
            buckets[index][state] += 1
    return [(first + i * HOUR_MS, dict(counts)) for i, counts in enumerate(buckets)]


def service_names(configured: Mapping[str, TrainingServiceConfig]) -> list[str]:
    """The services whose load is shown: the configured ones, or the one runs default to."""
    return sorted(configured) or [UNCONFIGURED_SERVICE]


def throttle_seconds(pttl: int) -> float | None:
    """Seconds a throttle has left from its key's PTTL; None when there is no throttle."""
    if pttl == NO_KEY:
        return None
    return max(0, pttl) / 1000  # -1 (no TTL) is never written: read it as ending now


def _service_load(
    name: str, config: TrainingServiceConfig | None, replies: Iterator[int]
) -> ServiceLoad:
    in_use = next(replies)
    caps = [] if config is None else [e.max_concurrent_jobs for e in config.endpoints]
    endpoints = tuple(EndpointLoad(i, next(replies), cap) for i, cap in enumerate(caps))
    waiting = {lane: next(replies) for lane in Lane}
    return ServiceLoad(
        name=name,
        in_use=in_use,
        cap=None if config is None else config.max_running,
        endpoints=endpoints,
        waiting=waiting,
        throttle_seconds=throttle_seconds(next(replies)),
    )


def load_of(configured: Mapping[str, TrainingServiceConfig], replies: Sequence[int]) -> Load:
    """The load from the replies of the pipeline ``FleetViews.load`` sends: for each service
    (``service_names`` order) slots in use, in use per endpoint, waiting per lane (``Lane``
    order), throttle PTTL; then ready steps, deferred steps, parked runs."""
    values = iter(int(value) for value in replies)
    services = tuple(
        _service_load(name, configured.get(name), values) for name in service_names(configured)
    )
    ready, deferred, parked = next(values), next(values), next(values)
    waiting = sum(service.waiting_total for service in services)
    return Load(services, Backlog(ready, deferred, waiting, parked))


class FleetViews:
    """Reads of the fleet for the dashboard and the gauges (no writes)."""

    def __init__(
        self, store: Store, services: Mapping[str, TrainingServiceConfig], queue_name: str
    ) -> None:
        self.store = store
        self.services = services
        self.queue_name = queue_name

    @classmethod
    def of(cls, store: Store, settings: RetrainqSettings) -> FleetViews:
        """The views of the services and arq queue ``settings`` name."""
        return cls(store, settings.training_services, settings.redis.queue_name)

    @property
    def keys(self) -> Keys:
        """Key names of the store read."""
        return self.store.keys

    async def tenants(self, since_ms: int) -> FleetCounts:
        """Tenants counted one Lua call per page, with their runs created since ``since_ms``."""
        total = await self.store.count_tenants()
        pages = [
            await self.store.fleet_page(offset, SCAN_CHUNK, since_ms)
            for offset in range(0, min(total, MAX_SCANNED_TENANTS), SCAN_CHUNK)
        ]
        return count_pages(total, pages)

    async def load(self) -> Load:
        """Every training service's load and the backlog, in one pipelined round trip."""
        now = now_ms()
        after_now = (f"({now}", "+inf")  # leases not expired; steps deferred
        async with self.store.redis.pipeline(transaction=False) as pipe:
            for name in service_names(self.services):
                pipe.zcount(self.keys.slots(name), *after_now)
                config = self.services.get(name)
                for index in range(0 if config is None else len(config.endpoints)):
                    pipe.zcount(self.keys.endpoint_slots(name, index), *after_now)
                for lane in Lane:
                    pipe.zcard(self.keys.waiting(name, lane.value))
                pipe.pttl(self.keys.throttle(name))
            pipe.zcount(self.queue_name, "-inf", now)
            pipe.zcount(self.queue_name, *after_now)
            pipe.zcard(self.keys.polls)
            replies = await pipe.execute()
        return load_of(self.services, replies)

    async def recent_batches(self, limit: int) -> tuple[list[str], int]:
        """Ids of the ``limit`` newest batches, newest first, and how many batches there are."""
        async with self.store.redis.pipeline(transaction=False) as pipe:
            pipe.zrevrange(self.keys.batches, 0, limit - 1)
            pipe.zcard(self.keys.batches)
            ids, total = await pipe.execute()
        return list(ids), int(total)

    async def batch_size(self, batch_id: str) -> int:
        """How many runs a batch has."""
        return int(await reply(self.store.redis.llen(self.keys.batch_runs(batch_id))))
