"""What a worker's steps need, built once per process and handed to them explicitly."""

from __future__ import annotations

from dataclasses import dataclass, field

import aiohttp

from worker.azureml.arm import ArmClient
from worker.azureml.bes import BesClient
from worker.azureml.classic import EndpointsClient
from worker.blobs import BlobStore
from worker.failpoints import Failpoints
from worker.locks import Locks
from worker.parking import DurationEstimates, ParkedRuns
from worker.queue import StepQueue
from worker.settings import WorkerSettings
from worker.slots import Slots
from worker.store import Store


class UnknownEndpoint(LookupError):
    """A run refers to a training service or BES endpoint the settings do not have."""


@dataclass
class Deps:
    """Clients and stores of one worker process."""

    settings: WorkerSettings
    store: Store
    slots: Slots
    locks: Locks
    queue: StepQueue
    blobs: BlobStore
    session: aiohttp.ClientSession
    endpoints: EndpointsClient
    arm: ArmClient
    parked: ParkedRuns
    estimates: DurationEstimates
    bes: dict[tuple[str, int], BesClient] = field(default_factory=dict)
    failpoints: Failpoints = field(default_factory=lambda: Failpoints(()))

    def bes_client(self, service: str, endpoint: int) -> BesClient:
        """The BES client of one endpoint of a training service."""
        try:
            return self.bes[(service, endpoint)]
        except KeyError:
            raise UnknownEndpoint(f"no BES endpoint {endpoint} of service {service!r}") from None
