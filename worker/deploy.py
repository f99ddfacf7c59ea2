"""Deploying a run's model: a tenant's classic endpoint (PATCH), its new web service (ARM), or
its pointer in an Azure ML v2 serving pool (``worker.azureml_v2.pool``).

A per-tenant lock serialises deploys, and the tenant's deployed sequence number fences them:
a run deploys only if it is newer than the deployed model, so a late old run never overwrites
a newer model.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import timedelta

import structlog

from worker.azureml.arm import ProvisioningState, definition_for_tenant, with_trained_model
from worker.azureml.errors import NotFoundError, PermanentError
from worker.azureml.locations import BlobLocation
from worker.azureml_v2.pool import PoolTarget
from worker.deps import Deps
from worker.errors import RunFailed
from worker.naming import endpoint_name_for
from worker.run.actions import DeployProgress
from worker.schemas import (
    ClassicTarget,
    DeployedModel,
    NewServiceTarget,
    Run,
    Tenant,
    V2PoolTarget,
    utcnow,
)
from worker.staging import staging_endpoint_for

log = structlog.get_logger("retrainq.deploy")


def service_name_for(tenant_id: str) -> str:
    """The name of a tenant's own new (ARM) web service."""
    return f"rq-{tenant_id}"


class Deployer:
    """Runs the deploy phase of a run, one bounded step at a time."""

    def __init__(self, deps: Deps, pools: Mapping[str, PoolTarget] | None = None) -> None:
        self.deps = deps
        self.pools = dict(pools or {})
        self.lock_ttl_ms = deps.settings.job_timeout_seconds * 3 * 1000

    def _pool(self, target: V2PoolTarget) -> PoolTarget:
        pool = self.pools.get(target.pool or "")
        if pool is None:
            raise RunFailed(f"the tenant's v2 pool {target.pool!r} is not configured", "config")
        return pool

    def _model_location(self, run: Run) -> BlobLocation:
        ttl = timedelta(seconds=self.deps.settings.blob.sas_ttl_seconds)
        return self.deps.blobs.read_sas(run.outputs.model_path, ttl)

    async def deploy(self, run: Run) -> DeployProgress:
        """Deploy (or keep deploying) the run's model; holds the tenant's lock meanwhile."""
        lock = self.deps.store.keys.deploy_lock(run.tenant_id)
        if not await self.deps.locks.acquire(lock, run.id, self.lock_ttl_ms):
            log.info("deploy.waiting_for_lock")
            return DeployProgress(done=False, lock_busy=True)
        keep_lock = False
        try:
            result = await self._locked_step(run)
            keep_lock = not result.done
            return result
        finally:
            if not keep_lock:
                await self.deps.locks.release(lock, run.id)

    async def _locked_step(self, run: Run) -> DeployProgress:
        tenant = await self.deps.store.get_tenant(run.tenant_id)
        if tenant is None or tenant.deleted:
            raise RunFailed("the tenant was deleted", "tenant_deleted")
        check_promotes_scored(run)
        if tenant.deployed is not None and tenant.deployed.seq >= run.seq:
            note = f"superseded: run {tenant.deployed.run_id} is newer and deployed"
            log.info("deploy.superseded", deployed_run_id=tenant.deployed.run_id)
            return DeployProgress(done=True, deployed=tenant.deployed.run_id == run.id, note=note)
        if isinstance(tenant.target, ClassicTarget):
            await self._patch_endpoint(run, tenant, tenant.target)
        elif isinstance(tenant.target, V2PoolTarget):
            pointed = await self._point_in_pool(run, tenant.target)
            if not (pointed.done and pointed.deployed):
                return pointed
        else:
            pending = await self._update_service(run, tenant, tenant.target)
            if pending is not None:
                return pending
        model = DeployedModel(
            run_id=run.id,
            seq=run.seq,
            model_path=run.outputs.model_path,
            metrics=run.metrics,
            deployed_at=utcnow(),
            rollback_of=run.rollback_to,
            decision=run.decision,
        )
        accepted = await self.deps.store.record_deployment(tenant.id, model)
        log.info("deploy.recorded", accepted=accepted)
        return DeployProgress(done=True, deployed=accepted)

    async def _patch_endpoint(self, run: Run, tenant: Tenant, target: ClassicTarget) -> None:
        name = tenant.endpoint_name or endpoint_name_for(tenant.id)
        service = target.web_service_id
        endpoints = self.deps.endpoints
        location = self._model_location(run)
        # A tenant's endpoint, once created, is PATCHed straight away; it is (re)created only
        # when it was never made or was deleted behind our back (the PATCH answers 404).
        if tenant.endpoint_name is None:
            if await endpoints.get_endpoint(service, name) is None:
                await self._create_endpoint(service, name, tenant)
            await self.deps.store.update_tenant(tenant.id, _remember("endpoint_name", name))
        try:
            await endpoints.patch_model(service, name, target.resource_name, location)
        except NotFoundError:
            await self._create_endpoint(service, name, tenant)
            await endpoints.patch_model(service, name, target.resource_name, location)
        await self.deps.failpoints.hit("deploy.after_patch", run.id)
        log.info("endpoint.patched", endpoint=name)

    async def remove(self, tenant: Tenant) -> None:
        """Delete the tenant's endpoint (and staging endpoint) or web service (one that is
        gone already is fine)."""
        if isinstance(tenant.target, ClassicTarget):
            if tenant.endpoint_name is not None:
                await self.deps.endpoints.delete_endpoint(
                    tenant.target.web_service_id, tenant.endpoint_name
                )
                log.info("offboard.endpoint_deleted", endpoint=tenant.endpoint_name)
            await self.deps.endpoints.delete_endpoint(
                tenant.target.web_service_id, staging_endpoint_for(tenant.id)
            )
        elif isinstance(tenant.target, V2PoolTarget):
            pool = self.pools.get(tenant.target.pool or "")
            if pool is None:
                raise PermanentError(
                    f"the tenant's v2 pool {tenant.target.pool!r} is not configured",
                    code="UnknownPool",
                )
            await pool.remove(tenant.id)
            log.info("offboard.pool_left", pool=tenant.target.pool)
        elif tenant.service_name is not None:
            await self.deps.arm.delete(tenant.service_name)
            log.info("offboard.service_deleted", service=tenant.service_name)

    async def _point_in_pool(self, run: Run, target: V2PoolTarget) -> DeployProgress:
        """One step of moving the tenant's pointer in its pool (a rollback run points at the
        version of the run it restores)."""
        restores = None
        if run.rollback_to is not None:
            restores = await self.deps.ledger.load(run.rollback_to)
            if restores is None or restores.tenant_id != run.tenant_id:
                raise RunFailed(f"run {run.rollback_to} to roll back to is gone", "rollback_source")
        return await self._pool(target).deploy(run, restores)

    async def _create_endpoint(self, service: str, name: str, tenant: Tenant) -> None:
        await self.deps.endpoints.create_endpoint(
            service, name, description=f"retrainq tenant {tenant.id}"
        )
        log.info("endpoint.created", endpoint=name)

    async def _update_service(
        self, run: Run, tenant: Tenant, target: NewServiceTarget
    ) -> DeployProgress | None:
        name = tenant.service_name or service_name_for(tenant.id)
        arm = self.deps.arm
        if not run.deploy_submitted:
            location = self._model_location(run)
            current = await arm.get(name)
            if current is None:
                template = await arm.get(target.template_service)
                if template is None:
                    raise RunFailed(
                        f"template web service {target.template_service!r} not found",
                        "template_not_found",
                    )
                body = definition_for_tenant(
                    template.definition, name, tags={"retrainq-tenant": tenant.id}
                )
                body = with_trained_model(body, location.uri, location.sas_blob_token)
                await arm.put(name, body)
                log.info("service.created", service=name)
            else:
                body = with_trained_model(current.definition, location.uri, location.sas_blob_token)
                await arm.patch_assets(name, body["properties"]["assets"])
                log.info("service.updating", service=name)
            await self.deps.failpoints.hit("deploy.after_arm_put", run.id)
            if tenant.service_name is None:
                await self.deps.store.update_tenant(tenant.id, _remember("service_name", name))
            return DeployProgress(done=False, submitted=True)
        state = await arm.provisioning_state(name)
        if state is ProvisioningState.FAILED:
            raise RunFailed(
                f"web service {name} failed to provision the new model; it keeps the previous one",
                "provisioning_failed",
            )
        if state is not ProvisioningState.SUCCEEDED:
            return DeployProgress(done=False)
        log.info("service.provisioned", service=name)
        return None


def check_promotes_scored(run: Run) -> None:
    """A run judged on a holdout deploys exactly the model its challenger job scored."""
    if run.decision is None or run.decision.comparison is None:
        return
    if run.decision.comparison.challenger_model != run.outputs.model_path:
        raise RunFailed(
            "the model to deploy is not the one scored on the holdout", "unscored_model"
        )


def _remember(field_name: str, name: str) -> Callable[[Tenant], Tenant | None]:
    """A tenant change that records the endpoint or service name once."""

    def change(tenant: Tenant) -> Tenant | None:
        if getattr(tenant, field_name) is not None:
            return None
        return tenant.model_copy(update={field_name: name})

    return change
