"""The ledger: the only code that writes run hashes and their indices.

A run's hash (``doc``, ``state``, ``version``, the flags the API and the sweeper set beside
it) and every index that follows from its state — the reconciler's due list, the sweeper's
polls list, the waiting sets, batch counters, the tenant's active run, the tenant's and the
batch's run lists — are written here and nowhere else, each multi-key change by one Lua
script. The scripts sit beside this module (``*.lua``); their constants (state names, the
terminal set, field names) are generated from ``worker.run.model`` when they are loaded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline

from worker.bulk_order import BulkOrder, Waiting, WaitingOrder
from worker.keys import Keys
from worker.redisio import reply
from worker.run.model import Lane, Run, RunState, Transition, applied
from worker.run.scripts import (
    F_FINISHED,
    F_FOLLOWUP,
    F_POLLS,
    F_VERSION,
    RUN_FIELDS,
    now_ms,
    oom_safe_script,
    script,
)
from worker.tenants import StaleRecord


class StaleRun(StaleRecord):
    """A compare-and-set of a run lost: another step moved it on first."""


def _ms_after(seconds: float) -> str:
    return str(now_ms() + int(seconds * 1000))


def run_of(fields: Sequence[str | None]) -> Run | None:
    """A run from its hash fields (``RUN_FIELDS`` order), with the flags set beside it."""
    doc, cancel, rerun, polls, finished = fields
    if doc is None:
        return None
    run = Run.model_validate_json(doc)
    return run.model_copy(
        update={
            "cancel_requested": run.cancel_requested or cancel == "1",
            "rerun_requested": run.rerun_requested or rerun == "1",
            "polls": int(polls or 0),
            "bes_finished_seen": run.bes_finished_seen
            or (finished is not None and finished == run.bes_job_id),
        }
    )


@dataclass(frozen=True)
class Placement:
    """Where a saved run goes next: due in ``due_in`` s, parked, waiting, or nowhere."""

    due_in: float | None = None
    park_in: float | None = None
    waiting: bool = False


@dataclass(frozen=True)
class Grant:
    """A slot handed to a run, on one BES endpoint of the service, and the run's version
    (None if its record is gone)."""

    run_id: str
    endpoint: int
    version: int | None = None


@dataclass(frozen=True)
class NewRun:
    """A run to create, and whether it starts waiting for a slot (no first step)."""

    run: Run
    rerun_if_active: bool = False


class Ledger:
    """Writes of runs and their indices (and the run reads that go with them)."""

    def __init__(
        self, redis: aioredis.Redis, keys: Keys, bulk_order: BulkOrder = "longest_first"
    ) -> None:
        self.redis = redis
        self.keys = keys
        # The scores runs enter their waiting sets with (the bulk lane's order).
        self.waiting_order = WaitingOrder(redis, keys, bulk_order)
        self._save = redis.register_script(script("save_run"))
        self._create = redis.register_script(script("create_run"))
        self._cancel = redis.register_script(script("request_cancel"))
        self._claim = redis.register_script(script("claim_polls"))
        self._dispatch = redis.register_script(script("dispatch"))
        self._recover = redis.register_script(script("recover_worker"))
        self._archive_lease = redis.register_script(oom_safe_script("archive_lease"))
        self._archive_intent = redis.register_script(oom_safe_script("archive_intent"))
        self._archive_remove = redis.register_script(oom_safe_script("archive_remove"))

    # --- reads -----------------------------------------------------------------------------

    async def load(self, run_id: str) -> Run | None:
        """The run with its flags, or None."""
        return run_of(await reply(self.redis.hmget(self.keys.run(run_id), RUN_FIELDS)))

    async def load_many(self, run_ids: Sequence[str]) -> list[Run]:
        """Runs by id in one round trip (missing ones skipped)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for run_id in run_ids:
                pipe.hmget(self.keys.run(run_id), RUN_FIELDS)
            replies = await pipe.execute()
        return [run for run in map(run_of, replies) if run is not None]

    async def version(self, run_id: str) -> int | None:
        """The stored version of a run (for per-step arq job ids)."""
        value = await reply(self.redis.hget(self.keys.run(run_id), F_VERSION))
        return None if value is None else int(value)

    async def is_due(self, run_id: str) -> bool:
        """Whether a step (or an ended run's tail work) is pending for the run."""
        return await reply(self.redis.zscore(self.keys.due, run_id)) is not None

    async def due(self, before_ms: int, limit: int = 1000) -> list[str]:
        """Runs whose next step was due before ``before_ms``."""
        ids: list[str] = await self.redis.zrangebyscore(
            self.keys.due, "-inf", before_ms, start=0, num=limit
        )
        return ids

    async def overdue_parked(self, before_ms: int, limit: int = 1000) -> list[str]:
        """Parked runs whose poll was due before ``before_ms`` and that no sweeper claimed."""
        ids: list[str] = await self.redis.zrangebyscore(
            self.keys.polls, "-inf", before_ms, start=0, num=limit
        )
        return ids

    # --- creating runs ---------------------------------------------------------------------

    async def next_seq(self, tenant_id: str) -> int:
        """The tenant's next run sequence number (deploys are fenced by it)."""
        return int(await reply(self.redis.hincrby(self.keys.tenant(tenant_id), "seq", 1)))

    async def next_seqs(self, tenant_ids: Sequence[str]) -> list[int]:
        """Sequence numbers for many tenants in one round trip."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for tenant_id in tenant_ids:
                pipe.hincrby(self.keys.tenant(tenant_id), "seq", 1)
            return [int(seq) for seq in await pipe.execute()]

    async def create(self, new: Sequence[NewRun]) -> list[tuple[int, str]]:
        """Create runs unless their tenant has an active one: (1 created | 0 active | -1 no
        tenant, run id) each, in pipelined round trips."""
        waiting = [item.run for item in new if item.run.state is RunState.WAITING_SLOT]
        scores = await self.waiting_order.scores(
            [Waiting(r.training_service, r.lane, r.tenant_id) for r in waiting], now_ms()
        )
        score_of = {run.id: score for run, score in zip(waiting, scores, strict=True)}
        async with self.redis.pipeline(transaction=False) as pipe:
            for item in new:
                await self._create_in(pipe, item, score_of.get(item.run.id, ""))
            outcomes = await pipe.execute()
        return [(int(status), str(run_id)) for status, run_id in outcomes]

    async def _create_in(self, pipe: Pipeline, item: NewRun, waiting_score: str) -> None:
        run = item.run
        waiting = run.state is RunState.WAITING_SLOT
        batch = self.keys.batch(run.batch_id) if run.batch_id else self.keys.no_batch
        batch_runs = self.keys.batch_runs(run.batch_id) if run.batch_id else self.keys.no_batch
        await self._create(
            keys=[
                self.keys.tenant(run.tenant_id),
                self.keys.run(run.id),
                self.keys.due,
                self.keys.tenant_runs(run.tenant_id),
                batch,
                batch_runs,
                self.keys.waiting(run.training_service, run.lane.value)
                if waiting
                else self.keys.no_batch,
            ],
            args=[
                run.id,
                run.model_dump_json(),
                now_ms(),
                "1" if item.rerun_if_active else "0",
                self.keys.run_prefix(),
                "1" if run.batch_id else "0",
                "1" if waiting else "0",
                waiting_score,
            ],
            client=pipe,
        )

    async def create_batch_record(self, batch_id: str, doc: str, created: datetime) -> None:
        """Store a batch record (before its runs are created, and again with its final total)."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(self.keys.batch(batch_id), mapping={"doc": doc})
            pipe.zadd(self.keys.batches, {batch_id: created.timestamp()})
            await pipe.execute()

    async def followup(self, run_id: str) -> str | None:
        """The follow-up run recorded for ``run_id``, if any."""
        value = await reply(self.redis.hget(self.keys.run(run_id), F_FOLLOWUP))
        return None if value is None else str(value)

    async def record_followup(self, run_id: str, followup_id: str) -> None:
        """Record the run that follows ``run_id`` (first writer wins)."""
        await reply(self.redis.hsetnx(self.keys.run(run_id), F_FOLLOWUP, followup_id))

    # --- moving runs -----------------------------------------------------------------------

    async def apply(
        self,
        run: Run,
        transitions: tuple[Transition, ...],
        now: datetime,
        placement: Placement,
        *,
        polls: int = 0,
    ) -> Run:
        """Write ``run`` after ``transitions`` if nobody changed it since it was read, and
        place it (due, parked, waiting or nowhere). Raises ``StaleRun`` when the CAS loses."""
        saved = applied(run, transitions, now)
        at = now_ms()
        waiting_score = ""
        if placement.waiting:
            entry = Waiting(run.training_service, run.lane, run.tenant_id)
            [waiting_score] = await self.waiting_order.scores([entry], at)
        ok = await self._save(
            keys=[
                self.keys.run(run.id),
                self.keys.due,
                self.keys.batch(run.batch_id) if run.batch_id else self.keys.no_batch,
                self.keys.tenant(run.tenant_id),
                self.keys.waiting(run.training_service, run.lane.value),
                self.keys.polls,
            ],
            args=[
                str(run.version),
                saved.state.value,
                saved.model_dump_json(),
                "" if placement.due_in is None else _ms_after(placement.due_in),
                run.id,
                waiting_score,
                str(at),
                "" if placement.park_in is None else _ms_after(placement.park_in),
                str(polls),
            ],
        )
        if not ok:
            raise StaleRun(f"run {run.id} changed under version {run.version}")
        return saved.model_copy(update={"polls": run.polls + polls})

    async def request_cancel(self, run_id: str) -> bool:
        """Flag a run for cancellation; its next step ends it. False if no such run."""
        done = await self._cancel(
            keys=[self.keys.run(run_id), self.keys.due], args=[run_id, now_ms()]
        )
        return bool(done)

    async def not_due(self, run_id: str) -> None:
        """Take a run off the due list (no step pending: it waits, or its tail work is done)."""
        await reply(self.redis.zrem(self.keys.due, run_id))

    async def ensure_waiting(
        self, service: str, lane: Lane, run_id: str, tenant_id: str | None = None
    ) -> None:
        """Put a run (back) in its lane's waiting set, with no step pending."""
        [score] = await self.waiting_order.scores([Waiting(service, lane, tenant_id)], now_ms())
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zadd(self.keys.waiting(service, lane.value), {run_id: float(score)}, nx=True)
            pipe.zrem(self.keys.due, run_id)
            await pipe.execute()

    async def grant(
        self,
        service: str,
        *,
        endpoint_caps: Sequence[int],
        cap: int,
        reserve: int,
        lease_seconds: float,
        bulk_every: int,
        max_grants: int = 500,
    ) -> list[Grant]:
        """Hand free slots of ``service`` to waiting runs (each becomes due now)."""
        raw = await self._dispatch(
            keys=[
                self.keys.slots(service),
                self.keys.waiting(service, Lane.INTERACTIVE.value),
                self.keys.waiting(service, Lane.BULK.value),
                self.keys.slot_endpoint(service),
                self.keys.due,
                self.keys.dispatch_counter(service),
                self.keys.throttle(service),
                *(self.keys.endpoint_slots(service, i) for i in range(len(endpoint_caps))),
            ],
            args=[
                now_ms(),
                int(lease_seconds * 1000),
                cap,
                bulk_every,
                max_grants,
                reserve,
                self.keys.run_prefix(),
                *endpoint_caps,
            ],
        )
        grants = []
        for i in range(0, len(raw), 3):
            version = int(raw[i + 2])
            grants.append(Grant(str(raw[i]), int(raw[i + 1]), None if version < 0 else version))
        return grants

    # --- parked runs (the poll sweeper) ----------------------------------------------------

    async def claim_polls(self, limit: int, claim_seconds: float, owner: str = "-") -> list[str]:
        """Parked runs whose poll is due, each held back ``claim_seconds`` for the caller,
        recorded as claimed by worker ``owner``."""
        now = now_ms()
        ids: list[str] = await self._claim(
            keys=[self.keys.polls, self.keys.worker_claims(owner)],
            args=[now, now + int(claim_seconds * 1000), limit],
        )
        return ids

    def settle_claims(self, pipe: Pipeline, owner: str, run_ids: Sequence[str]) -> None:
        """Queue on ``pipe``: ``owner``'s sweep of these runs is recorded; the claims end."""
        if run_ids:
            pipe.srem(self.keys.worker_claims(owner), *run_ids)

    def repark(self, pipe: Pipeline, run_id: str, poll_in: float) -> None:
        """Queue on ``pipe``: the run's next poll in ``poll_in`` s, one more poll counted.

        Only a run still parked is moved (``XX``): a step that took it off meanwhile wins.
        """
        pipe.zadd(self.keys.polls, {run_id: now_ms() + int(poll_in * 1000)}, xx=True)
        pipe.hincrby(self.keys.run(run_id), F_POLLS, 1)

    def mark_finished(self, pipe: Pipeline, run_id: str, job_id: str) -> None:
        """Queue on ``pipe``: the run's job was seen ``Finished`` (its step skips a poll)."""
        pipe.hset(self.keys.run(run_id), F_FINISHED, job_id)

    async def release_lapsed(self, worker_id: str, in_progress_prefix: str) -> tuple[int, int]:
        """Release what a worker whose heartbeat lapsed held: (steps, claims) released, or
        (0, 0) when it is alive or another worker released it first."""
        released = await self._recover(
            keys=[
                self.keys.worker_heartbeat(worker_id),
                self.keys.workers,
                self.keys.worker_steps(worker_id),
                self.keys.worker_claims(worker_id),
                self.keys.polls,
            ],
            args=[worker_id, in_progress_prefix, now_ms()],
        )
        if not released:
            return 0, 0
        return int(released[0]), int(released[1])

    def unpark(self, pipe: Pipeline, run_id: str) -> None:
        """Queue on ``pipe``: forget a parked run that is gone or no longer training."""
        pipe.zrem(self.keys.polls, run_id)

    # --- the archive (worker/archive.py) ---------------------------------------------------

    async def hold_archive_lease(self, owner: str, ttl_ms: int) -> bool:
        """Take or keep the archiver's lease for ``ttl_ms``; False while another holds it."""
        return bool(await self._archive_lease(keys=[self.keys.archive_lease], args=[owner, ttl_ms]))

    async def renew_archive_lease(self, owner: str, ttl_ms: int) -> bool:
        """Extend ``owner``'s lease to ``ttl_ms`` from now; False when it lapsed or another
        worker holds it (a renewal never takes the lease back)."""
        args: list[str | int] = [owner, ttl_ms, "renew"]
        return bool(await self._archive_lease(keys=[self.keys.archive_lease], args=args))

    async def release_archive_lease(self, owner: str) -> None:
        """Give the archiver's lease back if ``owner`` holds it."""
        await self._archive_lease(keys=[self.keys.archive_lease], args=[owner, 0])

    async def record_archive_intent(self, owner: str, part: str, intent: str) -> bool:
        """Record that ``part`` is about to be written with the runs ``intent`` names (JSON);
        False when ``owner`` no longer holds the archiver's lease."""
        keys = [self.keys.archive_lease, self.keys.archive_intents]
        return bool(await self._archive_intent(keys=keys, args=[owner, part, intent]))

    async def archive_intents(self) -> dict[str, str]:
        """Archive intents not yet carried out: part path -> intent JSON."""
        intents: dict[str, str] = await reply(self.redis.hgetall(self.keys.archive_intents))
        return intents

    async def remove_archived(
        self, owner: str, part: str, where: str, tenant_id: str, runs: Sequence[Run]
    ) -> int:
        """Remove ``runs`` (written to ``part``) from Redis, index them to ``where`` (a part
        number, in the compact index), and clear the part's intent, at once: the runs
        removed, or -1 when the lease was lost."""
        keys = [
            self.keys.archive_lease,
            self.keys.archive_intents,
            self.keys.archive_parts,
            self.keys.archive_part_seq,
            self.keys.tenant_runs(tenant_id),
            self.keys.due,
            self.keys.polls,
        ]
        keys += [
            self.keys.batch_runs(r.batch_id) if r.batch_id else self.keys.no_batch for r in runs
        ]
        args = [
            owner,
            part,
            where,
            self.keys.run_prefix(),
            self.keys.archive_index_prefix(),
            *(r.id for r in runs),
        ]
        return int(await self._archive_remove(keys=keys, args=args))

    async def archived_candidates(self, run_id: str) -> list[str]:
        """Where an archived run's part may be (``{tenant}/{yyyy-mm}/{pass}``): one name, or
        more when another archived id shares its index field; empty if it is not archived.
        Runs archived before the compact index are found in the old ``archived`` hash."""
        bucket, field = self.keys.archive_index(run_id)
        numbers = await reply(self.redis.hget(bucket, field))
        if numbers is None:
            legacy = await reply(self.redis.hget(self.keys.archived, run_id))
            return [] if legacy is None else [str(legacy)]
        names = await reply(self.redis.hmget(self.keys.archive_parts, str(numbers).split(",")))
        return [str(name) for name in names if name is not None]

    async def archived_at(self, run_id: str) -> str | None:
        """Where an archived run's part is, when one part may hold it (else None)."""
        candidates = await self.archived_candidates(run_id)
        return candidates[0] if len(candidates) == 1 else None
