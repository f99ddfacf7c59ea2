"""The Azure ML clients against the real emulator: BES, classic endpoints, ARM and RRS."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr

from emulator import datagen
from emulator.datagen import bike_rental_csv
from worker.azureml.arm import (
    ArmClient,
    ProvisioningState,
    StaticToken,
    definition_for_tenant,
    runtime_base,
    with_trained_model,
)
from worker.azureml.bes import BesClient, BesJobRequest, JobState, JobStatus
from worker.azureml.classic import EndpointsClient
from worker.azureml.errors import (
    CannotStartJobError,
    PermanentError,
    ThrottledError,
    TransientError,
)
from worker.azureml.retry import RetryPolicy
from worker.azureml.rrs import SCORED_LABELS, RrsClient
from worker.blobs import BlobStore, evaluation_path, model_path, training_data_path
from worker.evaluate import parse_evaluation_csv
from worker.naming import endpoint_name_for

FAST = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.05)
TRAINING = "Bike Rental Training"
SCORING = "Bike Rental Scoring"
RESOURCE = "Bike Rental [trained model]"
TEMPLATE = "bike-rental-template"
# The bike-rental features, as the data generator writes them (without id, date and label).
COLUMNS = list(datagen.BIKE_COLUMNS[2:-1])
ROW = ["3", "1", "7", "17", "0", "3", "1", "1", "0.7", "0.65", "0.4", "0.2"]


@dataclass(frozen=True)
class Remote:
    """What the tests need to reach the emulator: ids, tokens and an HTTP session."""

    url: str
    session: aiohttp.ClientSession
    config: dict[str, Any]

    @property
    def workspace(self) -> dict[str, Any]:
        return dict(self.config["workspaces"][0])

    def service_id(self, name: str) -> str:
        return str(next(s["id"] for s in self.workspace["web_services"] if s["name"] == name))

    def endpoints(self, policy: RetryPolicy = FAST) -> EndpointsClient:
        return EndpointsClient(
            self.session,
            self.url,
            self.workspace["id"],
            SecretStr(self.workspace["authorization_token"]),
            policy,
            timeout_seconds=10,
        )

    def arm(self) -> ArmClient:
        arm = self.config["arm"]
        return ArmClient(
            self.session,
            self.url,
            arm["subscription_id"],
            arm["resource_groups"][0],
            StaticToken(SecretStr(arm["token"])),
            FAST,
            timeout_seconds=10,
        )

    async def admin(self, method: str, path: str, body: object = None) -> Any:
        async with self.session.request(method, f"{self.url}/_emulator/{path}", json=body) as r:
            assert r.status < 300, await r.text()
            return await r.json() if r.content_length != 0 else None

    async def stats(self) -> dict[str, Any]:
        return dict(await self.admin("GET", "stats"))


@pytest.fixture
async def remote(emulator_url: str) -> AsyncIterator[Remote]:
    """A session to the emulator and its config; faults are cleared after each test."""
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{emulator_url}/_emulator/config") as response:
            config = await response.json()
        remote = Remote(emulator_url, session, config)
        yield remote
        await remote.admin("PUT", "faults", {})


@pytest.fixture
async def blobs(blob_connection_string: str) -> AsyncIterator[BlobStore]:
    """A fresh container holding one tenant's training data."""
    container = f"c{uuid.uuid4().hex[:12]}"
    async with BlobStore(SecretStr(blob_connection_string), container, retry_total=0) as store:
        await store.ensure_container()
        csv = bike_rental_csv("acme", rows=600, seed=1).encode()
        await store.upload(training_data_path("acme", "v1"), csv)
        yield store


async def _training_bes(remote: Remote, policy: RetryPolicy = FAST) -> BesClient:
    endpoint = await remote.endpoints().get_endpoint(remote.service_id(TRAINING), "default")
    assert endpoint is not None
    return BesClient(remote.session, endpoint.api_location, endpoint.primary_key, policy)


def _request(blobs: BlobStore, run_id: str) -> BesJobRequest:
    return BesJobRequest(
        inputs={"input1": blobs.reference(training_data_path("acme", "v1"))},
        outputs={
            "output1": blobs.reference(model_path("acme", run_id)),
            "output2": blobs.reference(evaluation_path("acme", run_id)),
        },
    )


async def _until_ended(bes: BesClient, job_id: str) -> JobStatus:
    async with asyncio.timeout(60):
        while True:
            status = await bes.status(job_id)
            if status.state.terminal:
                return status
            await asyncio.sleep(0.1)


async def _trained(remote: Remote, blobs: BlobStore, run_id: str) -> JobStatus:
    bes = await _training_bes(remote)
    job_id = await bes.submit(_request(blobs, run_id))
    await bes.start(job_id)
    return await _until_ended(bes, job_id)


async def test_bes_job_trains_and_reports_readable_results(
    remote: Remote, blobs: BlobStore
) -> None:
    """submit → start → Finished; output1 is our .ilearner, output2 an evaluation we parse."""
    status = await _trained(remote, blobs, "r1")
    assert status.state is JobState.FINISHED, status.details
    model = status.results["output1"]
    assert model.relative_location.lstrip("/") == blobs.relative_location(model_path("acme", "r1"))
    async with remote.session.get(model.url.get_secret_value()) as response:
        assert response.status == 200
        assert len(await response.read()) > 0
    metrics = parse_evaluation_csv((await blobs.download(evaluation_path("acme", "r1"))).decode())
    assert 0.0 < metrics["Coefficient of Determination"] <= 1.0


async def test_second_start_is_cannot_start_job(remote: Remote, blobs: BlobStore) -> None:
    """Starting an already started job is refused recognisably, and starts nothing."""
    bes = await _training_bes(remote)
    before = (await remote.stats())["web_services"][TRAINING]["jobs_started"]
    job_id = await bes.submit(_request(blobs, "r2"))
    assert (await bes.status(job_id)).state is JobState.NOT_STARTED
    await bes.start(job_id)
    with pytest.raises(CannotStartJobError) as caught:
        await bes.start(job_id)
    assert caught.value.status == 400
    assert (await remote.stats())["web_services"][TRAINING]["jobs_started"] == before + 1
    await _until_ended(bes, job_id)


async def test_submit_is_never_retried(remote: Remote, blobs: BlobStore) -> None:
    """A submit whose reply is dropped raises at once; the emulator created exactly one job."""
    bes = await _training_bes(remote, RetryPolicy(attempts=5, base_delay=0.01, max_delay=0.05))
    before = (await remote.stats())["web_services"][TRAINING]["jobs_created"]
    await remote.admin("PUT", "faults", {"bes_submit": {"commit_then_drop": 3}})
    with pytest.raises(TransientError):
        await bes.submit(_request(blobs, "r3"))
    assert (await remote.stats())["web_services"][TRAINING]["jobs_created"] == before + 1


async def test_idempotent_calls_ride_out_transient_faults(remote: Remote, blobs: BlobStore) -> None:
    """Two injected 500s on status and one dropped start reply are retried through."""
    bes = await _training_bes(remote)
    job_id = await bes.submit(_request(blobs, "r4"))
    await remote.admin("PUT", "faults", {"bes_status": {"fail_next": 2, "error_status": 500}})
    assert (await bes.status(job_id)).state is JobState.NOT_STARTED
    await remote.admin("PUT", "faults", {"bes_start": {"commit_then_drop": 1}})
    with pytest.raises(CannotStartJobError):
        # The retry after the dropped reply meets the job already started.
        await bes.start(job_id)
    assert (await _until_ended(bes, job_id)).state is JobState.FINISHED


async def test_throttling_surfaces_retry_after(remote: Remote) -> None:
    """A 429 with Retry-After longer than the policy allows reaches the caller at once."""
    await remote.admin("PUT", "faults", {"management": {"fail_next": 1, "error_status": 429}})
    with pytest.raises(ThrottledError) as caught:
        await remote.endpoints().list_endpoints(remote.service_id(SCORING))
    assert caught.value.status == 429
    assert caught.value.retry_after == 1.0


async def test_wrong_key_is_permanent_and_not_echoed(remote: Remote) -> None:
    """A bad API key is a 401 PermanentError whose text does not contain the key."""
    good = await _training_bes(remote)
    bes = BesClient(remote.session, good.base_url, SecretStr("WRONGKEY"), FAST)
    with pytest.raises(PermanentError) as caught:
        await bes.status("0" * 32)
    assert caught.value.status == 401
    assert "WRONGKEY" not in str(caught.value)


async def test_classic_endpoint_lifecycle_serves_the_new_model(
    remote: Remote, blobs: BlobStore
) -> None:
    """PUT (twice) → PATCH with the BES model → RRS scores → DELETE (twice)."""
    status = await _trained(remote, blobs, "r5")
    assert status.state is JobState.FINISHED, status.details
    endpoints, service = remote.endpoints(), remote.service_id(SCORING)
    name = endpoint_name_for(f"acme-{uuid.uuid4().hex[:6]}")
    assert await endpoints.get_endpoint(service, name) is None
    await endpoints.create_endpoint(service, name, description="acme")
    created = await endpoints.get_endpoint(service, name)
    await endpoints.create_endpoint(service, name, description="acme")
    again = await endpoints.get_endpoint(service, name)
    assert created is not None
    assert again is not None
    assert created.name == again.name == name
    assert created.api_location == again.api_location
    assert created.primary_key.get_secret_value() == again.primary_key.get_secret_value()
    assert [r.name for r in created.resources] == [RESOURCE]
    assert name in [e.name for e in await endpoints.list_endpoints(service)]

    rrs = RrsClient(remote.session, FAST)
    before = await rrs.score(created.api_location, created.primary_key, COLUMNS, [ROW])
    await endpoints.patch_model(service, name, RESOURCE, status.results["output1"])
    await endpoints.patch_model(service, name, RESOURCE, status.results["output1"])
    after = await rrs.score(created.api_location, created.primary_key, COLUMNS, [ROW])
    old_label, new_label = before[0][SCORED_LABELS], after[0][SCORED_LABELS]
    assert old_label is not None
    assert new_label is not None
    assert float(new_label) != float(old_label)
    stats = (await remote.stats())["web_services"][SCORING]["endpoints"][name]
    assert stats["patches"] == 2

    await endpoints.delete_endpoint(service, name)
    assert await endpoints.get_endpoint(service, name) is None
    await endpoints.delete_endpoint(service, name)


async def test_new_service_from_template_with_tenant_model(
    remote: Remote, blobs: BlobStore
) -> None:
    """Template GET → tenant copy with the BES model → PUT → Succeeded → keys → RRS scores."""
    status = await _trained(remote, blobs, "r6")
    assert status.state is JobState.FINISHED, status.details
    arm = remote.arm()
    template = await arm.get(TEMPLATE)
    assert template is not None
    name = f"svc-acme-{uuid.uuid4().hex[:6]}"
    assert await arm.get(name) is None
    # The emulator reads the asset through a blob SAS of our own, valid briefly.
    location = blobs.read_sas(model_path("acme", "r6"), timedelta(minutes=10))
    body = with_trained_model(
        definition_for_tenant(template.definition, name, title="acme"),
        location.uri,
        location.sas_blob_token,
    )
    created = await arm.put(name, body)
    assert created.name == name
    state = created.provisioning_state
    for _ in range(200):
        if state in (ProvisioningState.SUCCEEDED, ProvisioningState.FAILED):
            break
        await asyncio.sleep(0.05)
        state = await arm.provisioning_state(name)
    assert state is ProvisioningState.SUCCEEDED
    service = await arm.get(name)
    assert service is not None
    keys = await arm.list_keys(name)
    rrs = RrsClient(remote.session, FAST)
    scored = await rrs.score(runtime_base(service), keys.primary, COLUMNS, [ROW])
    assert SCORED_LABELS in scored[0]

    patched = await arm.patch_assets(name, service.definition["properties"]["assets"])
    assert patched.name == name
    await arm.delete(name)
    assert await arm.get(name) is None
    await arm.delete(name)
