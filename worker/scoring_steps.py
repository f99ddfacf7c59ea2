"""The step loop's side of the holdout gate: what the champion/challenger actions do.

``Stepper`` hands the actions of ``worker/run/gating.py`` here: split a run's data into
blobs, stage the candidate, take and keep a scoring slot, submit, start and poll scoring jobs
and read what the gate measures. Every port call is here; every decision is the machine's.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import structlog

from worker.azureml.errors import AzureMLError
from worker.blobs import BlobStore
from worker.deps import Deps
from worker.errors import RunFailed
from worker.evaluate import Gate, HoldoutSettings
from worker.holdout import SplitError, split_blob
from worker.measures import MeasureError
from worker.run import model as m
from worker.run.actions import (
    Action,
    Done,
    Failure,
    FailureKind,
    JobStatusSeen,
    Measure,
    Measured,
    Observation,
    PollScoring,
    ServiceFacts,
    SlotAnswer,
    SplitData,
    SplitSeen,
    Stage,
    StartScoring,
    SubmitScoring,
    Submitted,
    TakeScoringSlot,
)
from worker.run.model import Run
from worker.run.ports import ScoringBackend, StagingTarget
from worker.run.scoring_slots import ScoringSlots
from worker.run.slots import Hold
from worker.schemas import ClassicTarget, Tenant
from worker.scoring import ClassicScoring
from worker.scoring_gate import (
    ScoredError,
    bootstrap_seed,
    improvement_interval,
    measurable,
    read_column,
    scored_column,
)
from worker.staging import ClassicStaging

log = structlog.get_logger("retrainq.gate")


def split_paths(run: Run) -> tuple[str, str]:
    """Where a run's training and holdout blobs go (under the tenant's own data prefix)."""
    base = f"data/{run.tenant_id}/splits/{run.id}"
    return f"{base}.train.csv", f"{base}.holdout.csv"


def split_choice(
    run: Run, tenant: Tenant, service: ServiceFacts | None
) -> tuple[HoldoutSettings, str] | str | None:
    """How the run's data is split (settings and label column), why it cannot be (a note),
    or None when its tenant's gate is in ``reported`` mode. Pure."""
    gate = tenant.gate or Gate()
    if gate.evaluation != "holdout":
        return None
    fallback = "judged on the reported evaluation instead"
    label = gate.holdout.label or (service.label_column if service else None)
    if not isinstance(tenant.target, ClassicTarget):
        return f"holdout evaluation needs a classic target (a staging endpoint): {fallback}"
    if run.data_path is None:
        return f"the run's data is no blob retrainq can split: {fallback}"
    if service is None or not service.splits:
        return f"the training service cannot train on a separate blob: {fallback}"
    if label is None:
        return f"no label column is known (gate.holdout.label): {fallback}"
    if not measurable(gate.metric):
        return f"retrainq cannot compute {gate.metric!r} itself: {fallback}"
    return gate.holdout, label


class GateSteps:
    """The ports of the holdout gate, built from a worker's dependencies."""

    def __init__(
        self,
        deps: Deps,
        services: dict[str, ServiceFacts],
        *,
        staging: StagingTarget | None = None,
        scoring: ScoringBackend | None = None,
    ) -> None:
        settings = deps.settings
        ttl = timedelta(seconds=settings.blob.sas_ttl_seconds)
        self.deps = deps
        self.blobs: BlobStore = deps.blobs
        self.services = services
        self.config = settings.scoring
        self.staging = staging or ClassicStaging(deps.endpoints, deps.blobs, ttl)
        self.scoring = scoring or ClassicScoring(
            deps.session,
            deps.endpoints,
            deps.blobs,
            settings.scoring,
            ttl,
            timeout_seconds=settings.azureml.request_timeout_seconds,
        )
        self.slots = ScoringSlots(
            deps.store.redis,
            deps.store.keys,
            cap=settings.scoring.max_running,
            caps=settings.scoring.service_caps,
            lease_seconds=settings.scoring.lease_seconds,
        )

    async def perform(self, run: Run, action: Action) -> Observation | None:
        """What the gate action saw (None: not a gate action)."""
        if isinstance(action, SplitData):
            return await self._split(run)
        if isinstance(action, Stage):
            tenant = await self._tenant(run)
            return await self.staging.stage(run, tenant)
        if isinstance(action, TakeScoringSlot):
            held = await self.slots.hold(self._service(run), run.id)
            return SlotAnswer(None if held is Hold.LOST else 0)
        if isinstance(action, SubmitScoring):
            job_id = await self.scoring.submit(run, action.job)
            log.info("scoring.submitted", role=action.job.role, scoring_job_id=job_id)
            return Submitted(job_id)
        if isinstance(action, StartScoring):
            await self.scoring.start(run, action.job)
            log.info("scoring.started", role=action.job.role, scoring_job_id=action.job.job_id)
            return Done()
        if isinstance(action, PollScoring):
            if await self.slots.hold(action.job.web_service_id, run.id) is Hold.LOST:
                reason = "the scoring slot's lease ran out and the cap is full"
                return Failure(FailureKind.PERMANENT, reason, "slot_lost")
            report = await self.scoring.status(run, action.job)
            return JobStatusSeen(report.state, report.details)
        if isinstance(action, Measure):
            return await self._measure(run)
        return None

    def _service(self, run: Run) -> str:
        return run.scoring_jobs[0].web_service_id if run.scoring_jobs else ""

    async def _tenant(self, run: Run) -> Tenant:
        tenant = await self.deps.store.get_tenant(run.tenant_id)
        if tenant is None or tenant.deleted:
            raise RunFailed("the tenant was deleted", "tenant_deleted")
        return tenant

    async def _split(self, run: Run) -> SplitSeen:
        tenant = await self._tenant(run)
        choice = split_choice(run, tenant, self.services.get(run.training_service))
        if choice is None or isinstance(choice, str):
            return SplitSeen(split=None, note=choice)
        settings, label = choice
        train_path, holdout_path = split_paths(run)
        try:
            counts = await split_blob(
                self.blobs,
                run.data_path or "",
                train_path,
                holdout_path,
                seed=run.id,
                fraction=settings.fraction,
                label=label,
                time_column=settings.time_column,
            )
        except SplitError as exc:
            return SplitSeen(split=None, note=f"{exc}: judged on the reported evaluation instead")
        log.info("holdout.split", train_rows=counts.train, holdout_rows=counts.holdout)
        await self.deps.failpoints.hit("split.after_write", run.id)
        split = m.HoldoutSplit(
            seed=run.id,
            fraction=settings.fraction,
            train_path=train_path,
            holdout_path=holdout_path,
            train_rows=counts.train,
            holdout_rows=counts.holdout,
            label=label,
            time_column=settings.time_column,
        )
        return SplitSeen(split=split, min_rows=settings.min_rows)

    async def _measure(self, run: Run) -> Measured:
        if run.scoring_jobs:
            await self.slots.release(self._service(run), run.id)
        tenant = await self.deps.store.get_tenant(run.tenant_id)
        if tenant is None or tenant.deleted:
            return Measured(gate=Gate(), tenant_exists=False)
        gate = tenant.gate or Gate()
        if run.holdout is None:
            return Measured(gate=gate, problem="the run has no holdout")
        limit = self.config.max_scored_bytes
        try:
            holdout = await self.blobs.download(run.holdout.holdout_path, max_bytes=limit)
            labels = read_column(holdout.decode(), run.holdout.label, "holdout")
            column = scored_column(gate.metric)
            scores: dict[str, list[float]] = {}
            for job in run.scoring_jobs:
                text = (await self.blobs.download(job.output_path, max_bytes=limit)).decode()
                scores[job.role] = read_column(text, column, f"{job.role}'s scored rows")
        except (ScoredError, UnicodeDecodeError) as exc:
            return Measured(gate=gate, problem=str(exc))
        challenger, champion = scores.get("challenger"), scores.get("champion")
        interval = None
        if champion is not None and challenger is not None and len(champion) == len(labels):
            try:  # CPU-bound (resamples x rows): off the event loop
                interval = await asyncio.to_thread(
                    improvement_interval,
                    gate,
                    labels,
                    champion,
                    challenger,
                    seed=bootstrap_seed(run.id),
                )
            except MeasureError:
                interval = None  # the machine measures again and says why
        return Measured(
            gate=gate,
            labels=labels,
            challenger=challenger,
            champion=champion,
            interval=interval,
        )

    async def end(self, run: Run, job: m.ScoringJob) -> None:
        """Delete a scoring job of a run that ends (best effort) and give back its slot."""
        try:
            await self.scoring.cancel(run, job)
            log.info("scoring.deleted", role=job.role)
        except (AzureMLError, RunFailed) as exc:
            log.warning("scoring.delete_failed", error=str(exc))

    async def release(self, run: Run) -> None:
        """Give back the run's scoring slot (idempotent)."""
        if run.scoring_jobs:
            await self.slots.release(self._service(run), run.id)
