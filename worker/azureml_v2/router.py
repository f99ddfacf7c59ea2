"""A training port that hands each run to the backend of its training service."""

from __future__ import annotations

from collections.abc import Mapping

from worker.run.model import Run
from worker.run.ports import JobReport, TrainingBackend


class TrainingRouter:
    """Delegates every call to the backend configured for ``run.training_service``."""

    def __init__(self, backends: Mapping[str, TrainingBackend], default: TrainingBackend) -> None:
        self.backends = backends
        self.default = default

    def backend(self, run: Run) -> TrainingBackend:
        """The run's backend; services not listed (classic ones, unknown ones) use the default."""
        return self.backends.get(run.training_service, self.default)

    async def submit(self, run: Run) -> str:
        """Create (and, where one call does both, start) the run's job."""
        return await self.backend(run).submit(run)

    async def start(self, run: Run, job_id: str) -> None:
        """Start the job."""
        await self.backend(run).start(run, job_id)

    async def status(self, run: Run, job_id: str) -> JobReport:
        """The job's current state."""
        return await self.backend(run).status(run, job_id)

    async def cancel(self, run: Run, job_id: str) -> None:
        """Cancel the job."""
        await self.backend(run).cancel(run, job_id)

    async def evaluation(self, run: Run) -> str:
        """The evaluation output of the finished job."""
        return await self.backend(run).evaluation(run)
