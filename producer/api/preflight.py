"""Onboarding preflight: before a tenant is stored, check its target and parameters remotely.

Classic target: the web service exists in the workspace, its default endpoint has the named
trained-model resource, and its input columns are among the training service's columns.
New (ARM) target: the template web service exists, is provisioned (``Succeeded``), has exactly
one trained-model asset, and its input columns fit the same way. An azureml_v2 training
service: no global parameters, and its workspace and datastore exist (the datastore on the
runs' blob container). Global parameters: each is
one the training service declares. A v2 pool target: the pool's online endpoint and its
deployment exist, are provisioned and the deployment takes live traffic. A mismatch is a 422
naming the field, what is wrong and what is there instead; a remote side that cannot be
reached is a 503 with ``Retry-After``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Iterable
from typing import Any

import aiohttp
from aiohttp import web
from pydantic import SecretStr

from producer.api.auth import principal
from producer.api.http import query_flag
from producer.api.problems import Problem
from producer.api.settings import ApiSettings
from producer.api.state import SETTINGS
from worker.azureml.arm import (
    ArmClient,
    ProvisioningState,
    StaticToken,
    TokenProvider,
    runtime_base,
    trained_model_asset,
)
from worker.azureml.classic import EndpointsClient
from worker.azureml.errors import NotFoundError, PermanentError, TransientError
from worker.azureml.identity import AzureIdentityToken
from worker.azureml.retry import RetryPolicy
from worker.azureml.swagger import ServiceSchema, fetch_schema
from worker.azureml_v2 import workspace as v2_workspace
from worker.schemas import ClassicTarget, NewServiceTarget, Tenant, V2PoolTarget
from worker.settings import AzureMLV2Config, V2PoolConfig
from worker.verification import Verification, Verifications

MAX_LISTED = 20
ALL_FIELDS = frozenset({"target", "training_service", "global_parameters"})
RETRY_AFTER = "10"
_POLICY = RetryPolicy(attempts=2, base_delay=0.2, max_delay=1.0)


class Mismatch(Exception):
    """The target does not exist or does not fit: a 422 naming ``field``."""

    def __init__(self, field: str, detail: str, found: Any = None) -> None:
        super().__init__(f"{field}: {detail}")
        self.field = field
        self.found = found


def _listed(names: Iterable[str]) -> list[str]:
    return sorted(names)[:MAX_LISTED]


def check_inputs(
    inputs: Collection[str], trained: Collection[str], where: str, service: str
) -> None:
    """Every input column of the scoring side must be one the training service trains on."""
    if not trained:
        return
    foreign = [c for c in inputs if c not in trained]
    if foreign:
        raise Mismatch(
            where,
            f"takes input columns the training service {service!r} does not train on: "
            + ", ".join(_listed(foreign)),
            found={"inputs": _listed(inputs), "training_columns": _listed(trained)},
        )


class Preflight:
    """The remote reads of the preflight, with the API's Azure ML settings."""

    def __init__(
        self, session: aiohttp.ClientSession, settings: ApiSettings, token: TokenProvider
    ) -> None:
        azureml = settings.azureml
        timeout = azureml.request_timeout_seconds
        self.session = session
        self.settings = settings
        self.timeout = timeout
        self.token = token
        self.endpoints = EndpointsClient(
            session,
            azureml.management_url,
            azureml.workspace_id,
            azureml.workspace_token,
            _POLICY,
            timeout_seconds=timeout,
        )
        self.arm = ArmClient(
            session,
            azureml.arm_url,
            azureml.subscription_id,
            azureml.resource_group,
            token,
            _POLICY,
            timeout_seconds=timeout,
        )

    async def check(self, tenant: Tenant, fields: Collection[str]) -> list[str]:
        """What was checked; ``Mismatch``, ``TransientError`` or ``PermanentError`` if not."""
        checks: list[str] = []
        service = self.settings.training_services.get(tenant.training_service)
        columns = service.columns if service else []
        if "target" in fields or "training_service" in fields:
            if isinstance(tenant.target, ClassicTarget):
                await self._classic(tenant.target, columns, tenant.training_service)
                checks += ["web_service", "resource_name", "input_columns"]
            elif isinstance(tenant.target, NewServiceTarget):
                await self._template(tenant.target, columns, tenant.training_service)
                checks += [
                    "template_service",
                    "provisioned",
                    "trained_model_asset",
                    "input_columns",
                ]
            elif isinstance(tenant.target, V2PoolTarget):
                checks += await self._v2_pool(tenant.target)
        if service is not None and service.azureml_v2 is not None:
            checks += await self._v2_service(tenant, service.azureml_v2, fields)
        elif tenant.global_parameters and service and service.endpoints:
            endpoint = service.endpoints[0]
            declared = await self._schema(endpoint.url, endpoint.api_key.get_secret_value())
            unknown = [p for p in tenant.global_parameters if p not in declared.global_parameters]
            if unknown:
                raise Mismatch(
                    "global_parameters",
                    f"the training service {tenant.training_service!r} declares no parameter "
                    + ", ".join(repr(p) for p in _listed(unknown)),
                    found=_listed(declared.global_parameters),
                )
            checks.append("global_parameters")
        return checks

    async def _v2_service(
        self, tenant: Tenant, config: AzureMLV2Config, fields: Collection[str]
    ) -> list[str]:
        """An azureml_v2 service takes no global parameters; its workspace and datastore
        exist, the datastore on the blob container runs use."""
        name = tenant.training_service
        if tenant.global_parameters:
            raise Mismatch(
                "global_parameters",
                f"the azureml_v2 training service {name!r} takes no global parameters",
                found=[],
            )
        if "training_service" not in fields:
            return []
        try:
            facts = await v2_workspace.look(
                self.session,
                self.settings.azureml.arm_url,
                config,
                await self.token.token(),
                self.timeout,
            )
        except NotFoundError as exc:
            part = v2_workspace.missing_part(exc.url)
            raise Mismatch(
                "training_service",
                f"the {part} of the azureml_v2 training service {name!r} was not found",
                found=config.datastore if part == "datastore" else config.workspace,
            ) from None
        if facts.container != self.settings.blob.container:
            raise Mismatch(
                "training_service",
                f"the datastore {config.datastore!r} of {name!r} is on container "
                f"{facts.container!r}, not the runs' container {self.settings.blob.container!r}",
                found=facts.container,
            )
        return ["v2_workspace", "v2_datastore"]

    async def _v2_pool(self, target: V2PoolTarget) -> list[str]:
        """The pool's endpoint and deployment exist, are provisioned, and the deployment
        takes live traffic (the pool is the one onboarding assigned, so it is configured)."""
        name = target.pool or ""
        pool = self.settings.v2_pools[name]
        service = self.settings.training_services[pool.service].azureml_v2
        assert service is not None  # the settings check each pool's service is a v2 one
        try:
            facts = await v2_workspace.look_pool(
                self.session,
                self.settings.azureml.arm_url,
                service,
                pool,
                await self.token.token(),
                self.timeout,
            )
        except NotFoundError as exc:
            part = v2_workspace.missing_pool_part(exc.url)
            found = pool.deployment if part == "deployment" else pool.endpoint
            raise Mismatch(
                "target.pool", f"the {part} {found!r} of pool {name!r} was not found", found
            ) from None
        _pool_ready(name, pool, facts)
        return ["v2_pool_endpoint", "v2_pool_deployment"]

    async def _schema(self, base: str, key: str) -> ServiceSchema:
        return await fetch_schema(
            self.session, base, SecretStr(key), timeout_seconds=self.timeout, policy=_POLICY
        )

    async def _classic(self, target: ClassicTarget, columns: list[str], training: str) -> None:
        found = await self.endpoints.get_service(target.web_service_id)
        if found is None:
            services = await self.endpoints.list_services()
            raise Mismatch(
                "target.web_service_id",
                f"the workspace has no classic web service {target.web_service_id!r}",
                found=[{"id": s.id, "name": s.name} for s in services[:MAX_LISTED]],
            )
        default = await self.endpoints.get_endpoint(target.web_service_id, "default")
        names = [r.name for r in default.resources] if default else []
        if default is None or not names:
            raise Mismatch(
                "target.web_service_id",
                f"web service {found.name!r} has no trained-model resource: it is not a "
                "predictive service (patch the predictive service, never the training one)",
                found={"name": found.name},
            )
        if target.resource_name not in names:
            raise Mismatch(
                "target.resource_name",
                f"web service {found.name!r} has no resource {target.resource_name!r}",
                found=_listed(names),
            )
        schema = await self._schema(default.api_location, default.primary_key.get_secret_value())
        check_inputs(schema.inputs, columns, "target.web_service_id", training)

    async def _template(self, target: NewServiceTarget, columns: list[str], training: str) -> None:
        service = await self.arm.get(target.template_service)
        if service is None:
            raise Mismatch(
                "target.template_service",
                f"the resource group has no web service {target.template_service!r}",
                found=_listed(await self.arm.list_names()),
            )
        if service.provisioning_state is not ProvisioningState.SUCCEEDED:
            raise Mismatch(
                "target.template_service",
                f"web service {service.name!r} is {service.provisioning_state.value}, "
                "not Succeeded",
                found=service.provisioning_state.value,
            )
        try:
            trained_model_asset(service.definition)
        except PermanentError as exc:
            assets = service.definition.get("properties", {}).get("assets") or {}
            raise Mismatch(
                "target.template_service",
                f"web service {service.name!r}: {exc.message}",
                found=_listed(
                    str(a.get("name", k)) for k, a in assets.items() if isinstance(a, dict)
                ),
            ) from None
        api_keys = await self.arm.list_keys(target.template_service)
        schema = await self._schema(runtime_base(service), api_keys.primary.get_secret_value())
        check_inputs(schema.inputs, columns, "target.template_service", training)


def _pool_ready(name: str, pool: V2PoolConfig, facts: v2_workspace.PoolFacts) -> None:
    """``Mismatch`` unless the pool's endpoint and deployment serve."""
    for part, state in (("endpoint", facts.endpoint_state), ("deployment", facts.deployment_state)):
        if state != "Succeeded":
            raise Mismatch("target.pool", f"the {part} of pool {name!r} is {state}", state)
    if facts.traffic <= 0:
        raise Mismatch(
            "target.pool",
            f"deployment {pool.deployment!r} of pool {name!r} takes no live traffic",
            facts.traffic,
        )


PREFLIGHT = web.AppKey("preflight", Preflight)
VERIFICATIONS = web.AppKey("verifications", Verifications)


async def preflight_ctx(app: web.Application) -> AsyncIterator[None]:
    """Own the preflight's HTTP session (and ARM credential) for the app's lifetime."""
    settings = app[SETTINGS]
    token: TokenProvider
    if settings.azureml.arm_auth == "azure_identity":
        token = AzureIdentityToken()
    else:
        token = StaticToken(settings.azureml.arm_token)
    async with aiohttp.ClientSession() as session:
        app[PREFLIGHT] = Preflight(session, settings, token)
        yield
    if isinstance(token, AzureIdentityToken):
        await token.close()


async def verify_tenant(request: web.Request, tenant: Tenant) -> Verification:
    """The preflight's outcome for ``tenant``, or "not verified" when skipped.

    Skipped with ``?verify=false`` (offline onboarding; admins only) or when the preflight
    setting is off;
    raises a 422/503/502 problem when the target does not fit or cannot be checked.
    """
    skip = not query_flag(request, "verify", default=True)
    if skip and not principal(request).admin:
        raise Problem(403, "Forbidden", "verify=false: only an admin key may skip the preflight")
    if skip or not request.app[SETTINGS].preflight:
        return Verification(verified=False)
    checks = await run_preflight(request.app, tenant, ALL_FIELDS)
    return Verification(verified=True, checks=tuple(checks))


async def run_preflight(app: web.Application, tenant: Tenant, fields: Collection[str]) -> list[str]:
    """The checks that passed; 422 on a mismatch, 503 when the remote side cannot answer."""
    try:
        return await app[PREFLIGHT].check(tenant, fields)
    except Mismatch as exc:
        raise Problem(
            422,
            "Unprocessable Content",
            f"{exc} (onboard with ?verify=false to skip this check)",
            code="preflight_mismatch",
            field=exc.field,
            found=exc.found,
        ) from None
    except TransientError as exc:
        raise Problem(
            503,
            "Service Unavailable",
            f"the onboarding preflight could not reach Azure ML ({exc.remote_code}); try again, "
            "or onboard with ?verify=false (the tenant is then recorded as not verified)",
            headers={"Retry-After": RETRY_AFTER},
        ) from None
    except PermanentError as exc:
        raise Problem(
            502,
            "Bad Gateway",
            f"Azure ML refused the onboarding preflight's read ({exc.remote_code}); check the "
            "API's Azure ML settings, or onboard with ?verify=false",
        ) from None
