"""What a worker's steps need, built once per process and handed to them explicitly."""

from __future__ import annotations

from dataclasses import dataclass, field

import aiohttp

from worker.azureml.arm import ArmClient
from worker.azureml.classic import EndpointsClient
from worker.blobs import BlobStore
from worker.failpoints import Failpoints
from worker.locks import Locks
from worker.parking import DurationEstimates, ParkedRuns
from worker.queue import StepQueue
from worker.run.ledger import Ledger
from worker.run.ports import DeployTarget, TrainingBackend
from worker.run.slots import Slots
from worker.settings import WorkerSettings
from worker.store import Store


@dataclass
class Deps:
    """Clients, stores and ports of one worker process.

    ``deployer`` is filled in after construction: the classic deploy target needs the
    other dependencies (tenants, locks, clients) itself.
    """

    settings: WorkerSettings
    store: Store
    ledger: Ledger
    slots: Slots
    locks: Locks
    queue: StepQueue
    blobs: BlobStore
    session: aiohttp.ClientSession
    endpoints: EndpointsClient
    arm: ArmClient
    parked: ParkedRuns
    estimates: DurationEstimates
    training: TrainingBackend
    deployer: DeployTarget = field(init=False)
    failpoints: Failpoints = field(default_factory=lambda: Failpoints(()))
