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
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog

from worker.archive_parts import PartName, decode_part, encode_part
from worker.archive_policy import GONE, past_grace, policy_for
from worker.archive_records import Intent, LeaseLost, RecordArchiver, write_once
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
    written, intents resumed."""

    held: bool = True
    archived: int = 0
    parts: list[str] = field(default_factory=list)
    resumed: int = 0
    batches: int = 0
    models: int = 0
    tenants: int = 0


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
    ) -> None:
        self.store = store
        self.ledger = store.ledger
        self.blobs = blobs
        self.config = config
        self.owner = owner
        self.failpoints = failpoints or Failpoints([])
        self.records = RecordArchiver(store, blobs, config, owner, self.failpoints)

    async def run_forever(self) -> None:
        """A pass every ``interval_seconds`` until cancelled; a failed pass is logged."""
        while True:
            await asyncio.sleep(self.config.interval_seconds)
            try:
                await self.archive_once()
            except Exception as exc:  # the next pass resumes what this one left
                log.warning("archive.pass_failed", error=str(exc), error_type=type(exc).__name__)

    async def archive_once(self, now: datetime | None = None) -> ArchivePass:
        """One pass: resume left intents, then archive what is past retention at ``now``."""
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
        for (tenant_id, month), runs in (await self._candidates(now)).items():
            if not await self._hold():
                raise LeaseLost(self.owner)
            name = PartName(tenant_id, month, pass_id)
            intent = Intent(tenant_id=tenant_id, where=name.where, ids=sorted(r.id for r in runs))
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

    async def _candidates(self, now: datetime) -> dict[tuple[str, str], list[Run]]:
        """Runs past retention by (tenant, month), at most ``max_runs_per_pass``: those of
        the tenants, then every run of the tenants offboarded longer than the grace period."""
        budget = self.config.max_runs_per_pass
        chosen: dict[tuple[str, str], list[Run]] = defaultdict(list)
        total = await self.store.count_tenants()
        chunks = [
            await self.store.list_tenant_ids(offset, TENANT_CHUNK)
            for offset in range(0, total, TENANT_CHUNK)
        ]
        chunks.append(await self.records.ledger.offboarded_before(self._grace_end(now), budget))
        for chunk in chunks:
            for tenant_id in chunk:
                for run in (await self._tenant_candidates(tenant_id, now))[:budget]:
                    chosen[(tenant_id, month_of(run))].append(run)
                    budget -= 1
                if budget <= 0:
                    return chosen
        return chosen

    def _grace_end(self, now: datetime) -> float:
        """Tenants offboarded before this (s since epoch) are past their grace period."""
        return (now - timedelta(days=self.config.offboarded_grace_days)).timestamp()

    async def _tenant_candidates(self, tenant_id: str, now: datetime) -> list[Run]:
        tenant = await self.store.get_tenant(tenant_id)
        gone = past_grace(tenant, self._grace_end(now))
        policy = GONE if gone else policy_for(self.config, tenant.retention if tenant else None)
        keep = policy.keep_runs
        older_ids = await self.store.tenant_run_ids(tenant_id, keep, self.config.max_runs_per_pass)
        if not older_ids:
            return []
        active_id = await self.store.active_run_id(tenant_id)
        active = await self.store.get_run(active_id) if active_id else None
        newest = await self.store.tenant_run_ids(tenant_id, 0, keep) if keep else []
        if active is not None and not active.state.terminal and active.id in newest:
            older_ids = older_ids[1:]  # the active run takes none of the finished runs' places
        older = await self.store.get_runs(older_ids)
        protected = protected_runs(
            None if gone else tenant,
            await self.store.model_history(tenant_id, policy.keep_deployed),
            active,
            policy.keep_deployed,
        )
        due = {run.id for run in older if await self.ledger.is_due(run.id)}
        chosen = past_retention(older, protected, due, now - timedelta(days=policy.keep_days))
        # A few runs more in Redis buy parts of several runs (fewer blobs, index entries).
        return chosen if gone or len(chosen) >= self.config.min_part_runs else []
