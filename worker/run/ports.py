"""What a run needs from the outside world, as protocols the step loop calls.

The run's machine never sees a client: the step loop calls these ports and hands what they
return to the machine. Today's adapters speak Azure ML Studio (classic) (``worker/classic.py``
over the clients in ``worker/azureml/``); a second remote backend implements the same
protocols and plugs in without touching the machine or the ledger.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

from worker.azureml.bes import JobState
from worker.azureml.locations import BlobLocation, BlobReference
from worker.run.actions import DeployProgress, StagedSeen
from worker.run.model import Run, ScoringJob
from worker.schemas import Tenant


@dataclass(frozen=True)
class JobReport:
    """A training job's state as the backend reports it."""

    state: JobState
    details: str | None = None


class TrainingBackend(Protocol):
    """Creates, starts, watches and cancels one training job per run."""

    async def submit(self, run: Run) -> str:
        """Create the run's job (not started); returns its id. Never retried blindly."""
        ...

    async def start(self, run: Run, job_id: str) -> None:
        """Start the job; a job found started already is fine, one that cannot start raises."""
        ...

    async def status(self, run: Run, job_id: str) -> JobReport:
        """The job's current state."""
        ...

    async def cancel(self, run: Run, job_id: str) -> None:
        """Cancel and delete the job (a job that is gone is fine)."""
        ...

    async def evaluation(self, run: Run) -> str:
        """The text of the evaluation output the finished job wrote."""
        ...


class ScoringBackend(Protocol):
    """Creates, starts, watches and cancels the scoring jobs of the holdout gate: one job
    scores the run's holdout with the model one endpoint serves."""

    async def submit(self, run: Run, job: ScoringJob) -> str:
        """Create the scoring job (not started); returns its id. Never retried blindly."""
        ...

    async def start(self, run: Run, job: ScoringJob) -> None:
        """Start the recorded job; a job found started already is fine."""
        ...

    async def status(self, run: Run, job: ScoringJob) -> JobReport:
        """The scoring job's current state."""
        ...

    async def cancel(self, run: Run, job: ScoringJob) -> None:
        """Cancel and delete the scoring job (a job that is gone is fine)."""
        ...


class StagingTarget(Protocol):
    """Where a candidate serves while it is judged, beside the tenant's live target."""

    async def stage(self, run: Run, tenant: Tenant) -> StagedSeen:
        """Serve the run's model on the tenant's staging target (created on first use)."""
        ...

    async def remove(self, tenant: Tenant) -> None:
        """Delete the tenant's staging target (what is gone already is fine)."""
        ...


class DeployTarget(Protocol):
    """Where a tenant's model serves: deploy a run's model, check the target, remove it."""

    async def deploy(self, run: Run) -> DeployProgress:
        """Deploy (or keep deploying) the run's model; one bounded step."""
        ...

    async def remove(self, tenant: Tenant) -> None:
        """Delete the tenant's endpoint or service (what is gone already is fine)."""
        ...


class BlobStorage(Protocol):
    """The blob container runs read from and write to."""

    def reference(self, path: str) -> BlobReference:
        """A reference to ``path`` the remote service can write to."""
        ...

    def read_sas(self, path: str, ttl: timedelta) -> BlobLocation:
        """A read-only SAS location of ``path`` valid for ``ttl``."""
        ...

    async def download(self, path: str, *, max_bytes: int) -> bytes:
        """The blob's bytes (refused above ``max_bytes``)."""
        ...
