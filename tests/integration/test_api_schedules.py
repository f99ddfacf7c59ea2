"""Schedule routes and tenant schedules through the API, against real Redis."""

from __future__ import annotations

from tests.integration.conftest_api import ADMIN, ApiTestClient, bearer, onboard


async def test_a_fleet_schedule_is_created_listed_and_deleted(api: ApiTestClient) -> None:
    """PUT then GET a fleet-wide schedule; it lists with its next fire time; DELETE ends it."""
    put = await api.put(
        "/v1/schedules/nightly",
        json={"cron": "30 2 * * *", "target_kind": "classic"},
        headers=ADMIN,
    )
    assert put.status == 200, await put.text()
    view = await put.json()
    assert view["kind"] == "fleet"
    assert view["next_fire_at"].endswith(("02:30:00Z", "02:30:00+00:00"))
    listed = await (await api.get("/v1/schedules", headers=ADMIN)).json()
    assert [s["name"] for s in listed["items"]] == ["nightly"]
    assert (await api.delete("/v1/schedules/nightly", headers=ADMIN)).status == 204
    gone = await api.get("/v1/schedules/nightly", headers=ADMIN)
    assert gone.status == 404
    assert gone.content_type == "application/problem+json"


async def test_bad_cron_is_422_and_tenant_keys_are_403(api: ApiTestClient) -> None:
    """An invalid cron expression is refused; schedules are admin-only."""
    bad = await api.put("/v1/schedules/x", json={"cron": "every night"}, headers=ADMIN)
    assert bad.status == 422
    assert "cron" in (await bad.json())["detail"]
    created = await onboard(api, "acme")
    denied = await api.get("/v1/schedules", headers=bearer(created["api_key"]))
    assert denied.status == 403


async def test_a_tenant_schedule_follows_the_tenant(api: ApiTestClient) -> None:
    """Onboarding with a schedule registers it; PATCH changes it; offboarding removes it."""
    await onboard(api, "acme", schedule="0 * * * *")
    listed = await (await api.get("/v1/schedules", headers=ADMIN)).json()
    assert [(s["name"], s["cron"]) for s in listed["items"]] == [("tenant-acme", "0 * * * *")]
    patched = await api.patch("/v1/tenants/acme", json={"schedule": "15 3 * * *"}, headers=ADMIN)
    assert patched.status == 200
    listed = await (await api.get("/v1/schedules", headers=ADMIN)).json()
    assert listed["items"][0]["cron"] == "15 3 * * *"
    bad = await api.patch("/v1/tenants/acme", json={"schedule": "nope"}, headers=ADMIN)
    assert bad.status == 422
    assert (await api.delete("/v1/tenants/acme", headers=ADMIN)).status == 200
    listed = await (await api.get("/v1/schedules", headers=ADMIN)).json()
    assert listed["items"] == []


async def test_a_listed_tenant_schedule_is_read_by_name_but_written_on_the_tenant(
    api: ApiTestClient,
) -> None:
    """Every name the list shows can be read; a tenant's own schedule is changed only on the
    tenant, and the refusal says how."""
    await onboard(api, "acme", schedule="0 * * * *")
    read = await api.get("/v1/schedules/tenant-acme", headers=ADMIN)
    assert read.status == 200, await read.text()
    assert (await read.json())["cron"] == "0 * * * *"
    for answer in (
        await api.put("/v1/schedules/tenant-acme", json={"cron": "5 * * * *"}, headers=ADMIN),
        await api.delete("/v1/schedules/tenant-acme", headers=ADMIN),
    ):
        assert answer.status == 422
        assert answer.content_type == "application/problem+json"
        assert "retrainq tenants patch acme" in (await answer.json())["detail"]
    still = await (await api.get("/v1/schedules/tenant-acme", headers=ADMIN)).json()
    assert still["cron"] == "0 * * * *"
