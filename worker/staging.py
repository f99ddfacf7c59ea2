"""The staging target of a classic tenant: a second endpoint of its predictive web service.

A candidate the holdout gate judges is PATCHed onto the tenant's staging endpoint (never the
default endpoint, never the live one) and scored there; only a candidate the gate passes is
then deployed to the live endpoint. The staging endpoint's name is derived from the tenant
id alone, and it is created (PUT) the first time a PATCH finds it missing.
"""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta

import structlog

from worker.azureml.classic import EndpointsClient
from worker.azureml.errors import NotFoundError
from worker.errors import RunFailed
from worker.naming import TENANT_ID
from worker.run.actions import StagedSeen
from worker.run.model import Run
from worker.run.ports import BlobStorage
from worker.schemas import ClassicTarget, Tenant

log = structlog.get_logger("retrainq.staging")

_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"


def staging_endpoint_for(tenant_id: str) -> str:
    """The staging endpoint name of a tenant: ``s``, up to 13 characters of its id, and a
    10 character hash (24 in all: a valid classic endpoint name, never ``default``)."""
    if not TENANT_ID.fullmatch(tenant_id):
        raise ValueError(f"not a tenant id: {tenant_id!r}")
    number = int.from_bytes(hashlib.sha256(f"staging:{tenant_id}".encode()).digest(), "big")
    digest = []
    for _ in range(10):
        number, rest = divmod(number, 36)
        digest.append(_ALPHABET[rest])
    return "s" + re.sub(r"[^a-z0-9]", "", tenant_id)[:13] + "".join(digest)


class ClassicStaging:
    """PATCHes candidates onto tenants' staging endpoints (created on first use)."""

    def __init__(self, endpoints: EndpointsClient, blobs: BlobStorage, sas_ttl: timedelta) -> None:
        self.endpoints = endpoints
        self.blobs = blobs
        self.sas_ttl = sas_ttl

    async def stage(self, run: Run, tenant: Tenant) -> StagedSeen:
        """Serve the run's model on the tenant's staging endpoint; name what to score where."""
        target = tenant.target
        if not isinstance(target, ClassicTarget):
            raise RunFailed("holdout evaluation needs a classic target", "config")
        name = staging_endpoint_for(tenant.id)
        location = self.blobs.read_sas(run.outputs.model_path, self.sas_ttl)
        service = target.web_service_id
        try:
            await self.endpoints.patch_model(service, name, target.resource_name, location)
        except NotFoundError:
            await self.endpoints.create_endpoint(
                service, name, description=f"retrainq staging of tenant {tenant.id}"
            )
            log.info("staging.created", endpoint=name)
            await self.endpoints.patch_model(service, name, target.resource_name, location)
        log.info("staging.patched", endpoint=name, model=run.outputs.model_path)
        deployed = tenant.deployed
        live = tenant.endpoint_name if deployed is not None else None
        if live is not None and deployed is not None:
            await self._restore_live(
                service, live, target.resource_name, deployed.model_path, tenant.id
            )
        return StagedSeen(
            web_service_id=service,
            staging_endpoint=name,
            champion_endpoint=live,
            champion_model=deployed.model_path if deployed is not None and live else None,
        )

    async def _restore_live(
        self, service: str, live: str, resource: str, model: str, tenant_id: str
    ) -> None:
        """A live endpoint deleted behind retrainq's back (or lost by an emulator restarted
        without its state) is made again serving the deployed model, as a deploy would, so
        the champion is scored where the records say it serves."""
        if await self.endpoints.get_endpoint(service, live) is not None:
            return
        await self.endpoints.create_endpoint(
            service, live, description=f"retrainq tenant {tenant_id}"
        )
        location = self.blobs.read_sas(model, self.sas_ttl)
        await self.endpoints.patch_model(service, live, resource, location)
        log.warning("staging.live_endpoint_restored", endpoint=live, model=model)

    async def remove(self, tenant: Tenant) -> None:
        """Delete the tenant's staging endpoint (one never made, or gone, is fine)."""
        if isinstance(tenant.target, ClassicTarget):
            name = staging_endpoint_for(tenant.id)
            await self.endpoints.delete_endpoint(tenant.target.web_service_id, name)
            log.info("staging.deleted", endpoint=name)
