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

from worker.evaluate import Gate
from worker.keys import TENANT_RUNS_SUFFIX, Keys
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
# Widths (seconds) an activity chart's buckets may take, how many buckets it aims for at most,
# and how many it shows at least (earlier, empty ones when the runs span less).
BUCKET_SECONDS = (10, 30, 60, 120, 300, 600, 900, 1800, 3600)
ACTIVITY_BUCKETS = 48
MIN_ACTIVITY_BUCKETS = 12
DEFAULT_METRIC = Gate().metric
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

    @property
    def complete(self) -> bool:
        """Whether the scan read the whole tenant index; if not (past
        ``MAX_SCANNED_TENANTS``), every count is of the first ``scanned`` tenants by
        onboarding only, a lower bound of the fleet's."""
        return self.total <= MAX_SCANNED_TENANTS


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


def activity_window(
    recent: Iterable[tuple[str, int]], now: int, hours: int, target: int = ACTIVITY_BUCKETS
) -> tuple[int, list[tuple[int, dict[str, int]]]]:
    """Runs by state in buckets spanning only the part of the last ``hours`` that has runs.

    The width is the narrowest of ``BUCKET_SECONDS`` that covers the span from the oldest run
    to ``now`` in at most ``target`` buckets; buckets start on multiples of the width, and
    there are at least ``MIN_ACTIVITY_BUCKETS`` of them (within the window). Returns (width in
    seconds, [(bucket start ms, counts by state)] oldest first); without runs, the whole
    window in hours.
    """
    first = window_start(now, hours)
    created = [(state, at) for state, at in recent if first <= at <= now]
    if not created:
        return 3600, runs_by_hour((), now, hours)
    oldest = min(at for _, at in created)
    seconds = next((w for w in BUCKET_SECONDS if now - oldest <= w * 1000 * target), 3600)
    width = seconds * 1000
    last = now - now % width
    start = min(oldest - oldest % width, last - (MIN_ACTIVITY_BUCKETS - 1) * width)
    start = max(start, first)
    count = (last - start) // width + 1
    buckets: list[Counter[str]] = [Counter() for _ in range(count)]
    for state, at in created:
        index = (at - start) // width
        if 0 <= index < count:
            buckets[index][state] += 1
    return seconds, [(start + i * width, dict(c)) for i, c in enumerate(buckets)]


@dataclass(frozen=True)
class TenantRow:
    """What a tenant listing filters and sorts by: id, creation (index score, seconds), target
    kind, the deployed version and its gate metric value, the latest run's state."""

    id: str
    created: float
    kind: str
    deployed_seq: int | None
    metric: float | None
    latest_state: str | None

    @property
    def model_state(self) -> str:
        """retraining, up_to_date, kept_previous or no_model (see ``model_state``)."""
        return model_state(self.deployed_seq is not None, self.latest_state)


def tenant_rows_of(flat: Sequence[str]) -> list[TenantRow]:
    """Rows from the flat reply of ``TENANT_ROWS`` (six fields a tenant)."""
    fields = [iter(flat)] * 6
    return [
        TenantRow(
            id=str(tenant_id),
            created=float(created),
            kind=str(kind),
            deployed_seq=int(seq) if seq != "" else None,
            metric=float(metric) if metric != "" else None,
            latest_state=str(state) or None,
        )
        for tenant_id, created, kind, seq, metric, state in zip(*fields, strict=True)
    ]


# A page of the tenant index with what a listing sorts and filters by, read inside Redis.
# Offboarded tenants are left out. KEYS: tenants zset. ARGV: offset, count, tenant key prefix,
# run key prefix, suffix of a tenant's runs key, the default gate metric. Returns flat (id,
# creation score, target kind, deployed seq or '', its gate metric value or '', latest run's
# state or '').
TENANT_ROWS = """
local ids = redis.call('ZRANGE', KEYS[1], ARGV[1], tonumber(ARGV[1]) + tonumber(ARGV[2]) - 1,
  'WITHSCORES')
local out = {}
for i = 1, #ids, 2 do
  local id = ids[i]
  local doc = redis.call('HGET', ARGV[3] .. id, 'doc')
  if doc then
    local tenant = cjson.decode(doc)
    if tenant.deleted ~= true then
      local seq, value = '', ''
      local deployed = tenant.deployed
      if deployed ~= nil and deployed ~= cjson.null then
        seq = tostring(deployed.seq)
        local metric = ARGV[6]
        local gate = tenant.gate
        if gate ~= nil and gate ~= cjson.null and type(gate.metric) == 'string' then
          metric = gate.metric
        end
        local found = deployed.metrics and deployed.metrics[metric]
        if type(found) == 'number' then value = string.format('%.17g', found) end
      end
      local latest = redis.call('ZREVRANGE', ARGV[3] .. id .. ARGV[5], 0, 0)[1]
      local state = latest and redis.call('HGET', ARGV[4] .. latest, 'state') or ''
      table.insert(out, id)
      table.insert(out, ids[i + 1])
      table.insert(out, tenant.target.kind)
      table.insert(out, seq)
      table.insert(out, value)
      table.insert(out, state or '')
    end
  end
end
return out
"""


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
        self._tenant_rows = store.redis.register_script(TENANT_ROWS)

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

    async def tenant_rows(self, limit: int = MAX_SCANNED_TENANTS) -> tuple[list[TenantRow], int]:
        """Every tenant's listing row in creation order (at most ``limit`` tenants, one Lua
        call per page of ``SCAN_CHUNK``) and how many tenants the index holds."""
        total = await self.store.count_tenants()
        rows: list[TenantRow] = []
        for offset in range(0, min(total, limit), SCAN_CHUNK):
            rows += await self._rows_page(offset, SCAN_CHUNK)
        return rows, total

    async def tenant_rows_at(self, offset: int, count: int) -> tuple[list[TenantRow], int]:
        """The listing rows of the tenants at ``offset`` to ``offset + count`` of the index
        (creation order, any offset) and how many tenants it holds: a page in the index's own
        order without reading the rest of the fleet."""
        total = await self.store.count_tenants()
        rows: list[TenantRow] = []
        for start in range(offset, offset + count, SCAN_CHUNK):
            rows += await self._rows_page(start, min(SCAN_CHUNK, offset + count - start))
        return rows, total

    async def _rows_page(self, offset: int, count: int) -> list[TenantRow]:
        args: list[str | int] = [
            offset,
            count,
            self.keys.tenant_prefix(),
            self.keys.run_prefix(),
            TENANT_RUNS_SUFFIX,
            DEFAULT_METRIC,
        ]
        return tenant_rows_of(await self._tenant_rows(keys=[self.keys.tenants], args=args))
