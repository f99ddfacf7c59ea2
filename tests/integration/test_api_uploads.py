"""Uploads checked cell by cell: a refused CSV stores nothing and changes no data version."""

from __future__ import annotations

import uuid

import pytest

from producer.api.settings import ApiSettings
from tests.integration.conftest_api import ADMIN, ApiTestClient, make_settings, onboard
from worker.blobs import BlobStore

GOOD = b"temp,season,cnt\n0.24,spring,187\n0.30,summer,201\n"


@pytest.fixture
def api_settings(redis_url: str, blob_connection_string: str) -> ApiSettings:
    """A training service needing temp and cnt, with temp numeric."""
    return make_settings(
        redis_url,
        blob_connection_string,
        training_services={"default": {"columns": ["temp", "cnt"]}},
        numeric_columns={"default": ["temp", "cnt"]},
        max_upload_rows=100,
    )


@pytest.mark.parametrize(
    ("body", "column", "problem"),
    [
        (b"temp,season,cnt\n0.2,=cmd|' /C calc'!A0,1\n", "season", "formula"),
        (b"temp,season,cnt\n0.2,@SUM(1),1\n", "season", "formula"),
        (b"temp,season,cnt\nwarm,spring,1\n", "temp", "not a number"),
        (b"temp,season,cnt\n0.2,spring,1e999\n", "cnt", "not a finite number"),
        (b"temp,season,cnt\n0.2,spring,\n", "cnt", "empty"),
    ],
)
async def test_a_refused_upload_keeps_the_current_data(
    api: ApiTestClient,
    api_settings: ApiSettings,
    body: bytes,
    column: str,
    problem: str,
) -> None:
    """422 listing the cell; data_version, data_path and the blobs stay as they were."""
    tenant_id = f"cells-{uuid.uuid4().hex[:8]}"  # blobs outlive the flushed Redis
    await onboard(api, tenant_id, train=False)
    first = await api.put(f"/v1/tenants/{tenant_id}/data", data=GOOD, headers=ADMIN)
    assert first.status == 200, await first.text()
    answer = await api.put(f"/v1/tenants/{tenant_id}/data", data=body, headers=ADMIN)
    assert answer.status == 422, await answer.text()
    refused = await answer.json()
    assert refused["cells"][0]["column"] == column
    assert refused["cells"][0]["line"] == 2
    assert problem in refused["cells"][0]["problem"]
    tenant = await (await api.get(f"/v1/tenants/{tenant_id}", headers=ADMIN)).json()
    assert (tenant["data_version"], tenant["data_path"]) == (1, f"data/{tenant_id}/v1.csv")
    async with BlobStore.from_config(api_settings.blob) as blobs:
        assert await blobs.exists(f"data/{tenant_id}/v1.csv")
        assert not await blobs.exists(f"data/{tenant_id}/v2.csv")
    after = await api.put(f"/v1/tenants/{tenant_id}/data", data=GOOD, headers=ADMIN)
    assert (await after.json())["data_version"] == 2  # the refused upload took no version


async def test_rows_past_the_limit_are_refused(api: ApiTestClient) -> None:
    """max_upload_rows bounds the data rows."""
    await onboard(api, "rows", train=False)
    body = b"temp,cnt\n" + b"0.1,1\n" * 101
    answer = await api.put("/v1/tenants/rows/data", data=body, headers=ADMIN)
    assert answer.status == 422
    assert "more than 100 data rows" in (await answer.json())["detail"]
