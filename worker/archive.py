"""The archiver: moves finished runs past retention from Redis to blob storage, exactly once.

Any worker may run a pass; a lease (an owner-checked lock with a TTL) lets one at a time.
A pass first carries out the intents a crashed pass left, then, for each tenant and month
with runs past retention: records an intent (part name and run ids) in Redis, writes the
part (a deterministic name, never overwritten: a part found written is read back instead),
and removes the part's runs from Redis in one ledger script that also indexes each to its
part and clears the intent. A crash anywhere leaves every run in Redis or in exactly one
part; the next pass rolls the intent forward. The ledger's archive scripts run even while
Redis is full (``allow-oom``), so the archiver can free a Redis that refuses other writes.
"""

from __future__ import annotations

import asyncio
import secrets
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog

from worker.archive_parts import PartName, decode_part, encode_part
from worker.archive_records import Intent, LeaseLost, RecordArchiver, renew_lease, write_once
from worker.archive_walk import TenantReads, read_chunk
from worker.blobs import BlobStore
from worker.failpoints import Failpoints
from worker.records import utcnow
from worker.run.model import Run
from worker.schemas import DeployedModel, Tenant
from worker.settings import ArchiveConfig
from worker.store import Store

log = structlog.get_logger("retrainq.archive")

TENANT_CHUNK = 500


@dataclass
class ArchivePass:
    """What one pass did: runs, batches and model-history entries removed from Redis, parts
    written, intents resumed; ``lease_lost`` when it stopped early, its lease gone."""

    held: bool = True
    archived: int = 0
    parts: list[str] = field(default_factory=list)
    resumed: int = 0
    batches: int = 0
    models: int = 0
    tenants: int = 0
    lease_lost: bool = False


async def _no_hook(_index: int) -> None:
    """The default chunk hook: nothing (tests pass one that acts between chunks)."""


def protected_runs(
    tenant: Tenant | None,
    history: Sequence[DeployedModel],
    active: Run | None,
    keep_deployed: int,
) -> set[str]:
    """Runs a tenant needs in Redis: its deployed run, the runs behind its last
    ``keep_deployed`` deployed versions (rollback loads them), what an active rollback
    restores."""
    models = list(history[:keep_deployed])
    if tenant is not None and tenant.deployed is not None:
        models.append(tenant.deployed)
    kept = {model.run_id for model in models}
    kept |= {model.rollback_of for model in models if model.rollback_of}
    if active is not None and not active.state.terminal:
        kept.add(active.id)
        if active.rollback_to:
            kept.add(active.rollback_to)
    return kept


def past_retention(
    older: Sequence[Run], protected: set[str], due: set[str], cutoff: datetime
) -> list[Run]:
    """Of a tenant's runs beyond its newest ``keep_runs``, those to archive: finished before
    ``cutoff``, not protected, with no tail work pending."""
    return [
        run
        for run in older
        if run.state.terminal
        and run.updated_at < cutoff
        and run.id not in protected
        and run.id not in due
    ]


def month_of(run: Run) -> str:
    """The month (``yyyy-mm``, by creation) whose parts hold ``run``."""
    return run.created_at.strftime("%Y-%m")


def new_pass_id(now: datetime) -> str:
    """A pass's id: its start time and a random tail (parts of two passes never collide)."""
    return f"{now:%Y%m%dT%H%M%S}-{secrets.token_hex(4)}"


class Archiver:
    """One worker's archiver; ``archive_once`` is one pass (when it gets the lease)."""

    def __init__(
        self,
        store: Store,
        blobs: BlobStore,
        config: ArchiveConfig,
        owner: str,
        failpoints: Failpoints | None = None,
        *,
        chunk: int = TENANT_CHUNK,
        on_chunk: Callable[[int], Awaitable[None]] | None = None,
    ) -> None:
        self.store = store
        self.ledger = store.ledger
        self.blobs = blobs
        self.config = config
        self.owner = owner
        self.failpoints = failpoints or Failpoints([])
        self.chunk = chunk
        self.on_chunk = on_chunk or _no_hook
        self.records = RecordArchiver(store, blobs, config, owner, self.failpoints, chunk=chunk)

    async def run_forever(self) -> None:
        """A pass every ``interval_seconds`` until cancelled; a failed pass is logged."""
        while True:
            await asyncio.sleep(self.config.interval_seconds)
            try:
                await self.archive_once()
            except Exception as exc:  # the next pass resumes what this one left
                log.warning("archive.pass_failed", error=str(exc), error_type=type(exc).__name__)

    async def archive_once(self, now: datetime | None = None) -> ArchivePass:
        """One pass: resume left intents, then archive what is past retention at ``now``.

        The pass renews its lease at every chunk of tenants and before every part; when a
        renewal fails (the lease lapsed or another worker took it) the pass stops there,
        between parts, and reports ``lease_lost``: the next pass carries on from Redis."""
        if not await self._hold():
            return ArchivePass(held=False)
        report = ArchivePass()
        try:
            for part, raw in (await self.ledger.archive_intents()).items():
                await self._resume(part, Intent.model_validate_json(raw), report)
                report.resumed += 1
            now = now or utcnow()
            pass_id = new_pass_id(now)
            await self._archive_new(now, pass_id, report)
            report.batches += await self.records.batches(now, pass_id, report.parts)
            grace_end = self._grace_end(now)
            report.models += await self.records.models(pass_id, report.parts, grace_end)
            report.tenants += await self.records.tenants(pass_id, report.parts, grace_end)
        except LeaseLost:
            report.lease_lost = True
            log.warning("archive.lease_lost", archived=report.archived, parts=len(report.parts))
        finally:
            await self.ledger.release_archive_lease(self.owner)
        if any((report.archived, report.resumed, report.batches, report.models, report.tenants)):
            log.info(
                "archive.pass",
                archived=report.archived,
                batches=report.batches,
                models=report.models,
                tenants=report.tenants,
                parts=len(report.parts),
                resumed=report.resumed,
            )
        return report

    async def _hold(self) -> bool:
        return await self.ledger.hold_archive_lease(
            self.owner, int(self.config.lease_seconds * 1000)
        )

    async def _resume(self, part: str, intent: Intent, report: ArchivePass) -> None:
        if intent.kind == "runs":
            await self._carry_out(part, intent, report)
        elif intent.kind == "batches":
            report.batches += await self.records.carry_out(part, intent, report.parts)
        elif intent.kind == "tenant":
            report.tenants += await self.records.carry_out(part, intent, report.parts)
        else:
            report.models += await self.records.carry_out(part, intent, report.parts)

    async def _archive_new(self, now: datetime, pass_id: str, report: ArchivePass) -> None:
        """Walk the tenants a chunk at a time (then those offboarded past their grace): per
        chunk, renew the lease, read the chunk at once, archive its parts; at most
        ``max_runs_per_pass`` runs."""
        budget = self.config.max_runs_per_pass
        grace_end = self._grace_end(now)
        seen: set[str] = set()
        total = await self.store.count_tenants()
        offsets = list(range(0, total, self.chunk))
        for index in range(len(offsets) + 1):
            if index:
                await self.on_chunk(index)
            await renew_lease(self.store, self.owner, self.config)
            if index < len(offsets):
                chunk = await self.store.list_tenant_ids(offsets[index], self.chunk)
            else:
                chunk = await self.records.ledger.offboarded_before(grace_end, budget)
            chunk = [tenant_id for tenant_id in chunk if tenant_id not in seen]
            seen.update(chunk)
            chosen: dict[tuple[str, str], list[Run]] = defaultdict(list)
            for reads in await read_chunk(self.store, self.config, chunk, grace_end):
                for run in candidates_of(reads, now, self.config.min_part_runs)[:budget]:
                    chosen[(reads.tenant_id, month_of(run))].append(run)
                    budget -= 1
                if budget <= 0:
                    break
            for (tenant_id, month), runs in chosen.items():
                await self._start_part(PartName(tenant_id, month, pass_id), runs, report)
            if budget <= 0:
                return

    async def _start_part(self, name: PartName, runs: list[Run], report: ArchivePass) -> None:
        await renew_lease(self.store, self.owner, self.config)
        intent = Intent(tenant_id=name.tenant_id, where=name.where, ids=sorted(r.id for r in runs))
        if not await self.ledger.record_archive_intent(
            self.owner, name.path, intent.model_dump_json()
        ):
            raise LeaseLost(self.owner)
        await self.failpoints.hit("archive.after_intent", name.path)
        await self._carry_out(name.path, intent, report)

    async def _carry_out(self, part: str, intent: Intent, report: ArchivePass) -> None:
        """Write the part unless it is written, then remove its runs from Redis."""
        if await self.blobs.exists(part):
            runs = decode_part(await self.blobs.download(part))
        else:
            runs = await self.ledger.load_many(intent.ids)
            if runs:
                runs = await self._write(part, runs)
        await self.failpoints.hit("archive.after_write", part)
        mine = [run for run in runs if run.tenant_id == intent.tenant_id]
        removed = await self.ledger.remove_archived(
            self.owner, part, intent.where, intent.tenant_id, mine
        )
        if removed < 0:
            raise LeaseLost(self.owner)
        report.archived += removed
        report.parts.append(part)
        await self.failpoints.hit("archive.after_remove", part)

    async def _write(self, part: str, runs: list[Run]) -> list[Run]:
        """Write a new part; one that appeared meanwhile is kept, and its runs returned."""
        if await write_once(self.blobs, part, encode_part(runs)):
            return runs
        return decode_part(await self.blobs.download(part))

    def _grace_end(self, now: datetime) -> float:
        """Tenants offboarded before this (s since epoch) are past their grace period."""
        return (now - timedelta(days=self.config.offboarded_grace_days)).timestamp()


def candidates_of(reads: TenantReads, now: datetime, min_part_runs: int) -> list[Run]:
    """The runs of one tenant to archive now, from its chunk's reads."""
    if not reads.older_ids:
        return []
    older = reads.older
    active = reads.active
    if active is not None and not active.state.terminal and active.id in reads.newest:
        skipped = reads.older_ids[0]  # the active run takes none of the finished runs' places
        older = [run for run in older if run.id != skipped]
    protected = protected_runs(
        None if reads.gone else reads.tenant, reads.history, active, reads.policy.keep_deployed
    )
    cutoff = now - timedelta(days=reads.policy.keep_days)
    chosen = past_retention(older, protected, reads.due, cutoff)
    # A few runs more in Redis buy parts of several runs (fewer blobs, index entries).
    return chosen if reads.gone or len(chosen) >= min_part_runs else []
