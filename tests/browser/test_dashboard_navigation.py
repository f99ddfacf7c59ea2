"""Finding one's way in the dashboard, in headless Chromium against the real API app on real
Redis: the fleet's tenant table paged, filtered and sorted by the API, the schedules page, the
UTC/local switch with the zone on every date, and the runs chart scaled to its runs."""

from __future__ import annotations

import re

import redis.asyncio as aioredis
from playwright.async_api import Browser, Page, expect

from tests.browser.conftest import SCREENSHOTS, VIEWPORT
from tests.browser.test_dashboard_actions import goto, sign_in
from tests.integration.conftest_api import ADMIN, ApiTestClient, onboard
from tests.integration.test_api_tenant_list import deploy
from tests.runs import put_in_state
from worker.run.model import RunState
from worker.store import Store

ROWS = "[data-test=tenants] tbody tr[data-tenant]"
EASTERN = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d EST$")
UTC = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$")


async def row_ids(page: Page) -> list[str]:
    """The tenant ids of the table's rows, in order."""
    return [v or "" for v in await page.locator(ROWS).evaluate_all(
        "rows => rows.map((r) => r.dataset.tenant)"
    )]  # fmt: skip


async def shown(page: Page, query: str) -> None:
    """Wait until the table shows the answer to this exact query string."""
    await expect(page.locator("[data-test=tenants]")).to_have_attribute("data-query", query)


async def test_the_tenant_table_pages_filters_and_sorts_on_the_server(
    api: ApiTestClient, redis: aioredis.Redis, browser: Browser
) -> None:
    """23 tenants: two pages of 20 and 3 forward and back; a prefix and a state filter keep
    only their tenants; the metric column sorts best first, then worst first."""
    store = Store(redis)
    ids = [f"t-{i:02d}" for i in range(20)] + ["shop-a", "shop-b", "shop-c"]
    for tenant_id in ids:
        await onboard(api, tenant_id, train=False)
    for tenant_id, value in (("shop-a", 0.85), ("shop-b", 0.93), ("t-03", 0.5)):
        await deploy(store, tenant_id, 1, value)
    page = await browser.new_page(viewport=VIEWPORT)
    await sign_in(page, api)
    await shown(page, "limit=20&sort=created")
    assert await row_ids(page) == ids[:20]
    summary = page.locator("[data-test=tenant-summary]")
    await expect(summary).to_have_text("1\u201320 of 23 matching · 23 tenants")
    await expect(page.locator("#tenants-prev")).to_be_disabled()
    await page.click("#tenants-next")
    await expect(page.locator("[data-test=tenants]")).to_have_attribute("data-page", "2")
    assert await row_ids(page) == ids[20:]
    await expect(summary).to_have_text("21\u201323 of 23 matching · 23 tenants")
    await expect(page.locator("#tenants-next")).to_be_disabled()
    await page.click("#tenants-prev")
    await expect(page.locator("[data-test=tenants]")).to_have_attribute("data-page", "1")
    assert await row_ids(page) == ids[:20]

    await page.fill("#tenant-prefix", "shop")
    await shown(page, "limit=20&sort=created&prefix=shop")
    assert await row_ids(page) == ["shop-a", "shop-b", "shop-c"]
    await page.locator("th button[data-sort=metric]").click()
    await shown(page, "limit=20&sort=-metric&prefix=shop")
    assert await row_ids(page) == ["shop-b", "shop-a", "shop-c"]  # no metric: last
    await expect(page.locator(f"{ROWS}[data-tenant=shop-b] td[data-metric]")).to_have_text("0.930")
    await page.screenshot(path=str(SCREENSHOTS / "fleet-tenants-sorted.png"), full_page=True)
    await page.locator("th button[data-sort=metric]").click()
    await shown(page, "limit=20&sort=metric&prefix=shop")
    assert await row_ids(page) == ["shop-a", "shop-b", "shop-c"]

    await page.fill("#tenant-prefix", "")
    await page.select_option("#tenant-state", "up_to_date")
    await shown(page, "limit=20&sort=metric&state=up_to_date")
    assert await row_ids(page) == ["t-03", "shop-a", "shop-b"]
    await expect(page.locator(f"{ROWS}[data-state=up_to_date]")).to_have_count(3)
    await page.select_option("#tenant-state", "no_model")
    await shown(page, "limit=20&sort=metric&state=no_model")
    await expect(page.locator(ROWS)).to_have_count(20)
    await expect(summary).to_contain_text("of 20 matching")
    await page.close()


async def test_the_schedules_page_creates_and_deletes_fleet_schedules(
    api: ApiTestClient, browser: Browser
) -> None:
    """Every schedule is listed with its next run and zone; a fleet schedule saved from the
    form exists in the API afterwards and is gone once deleted; a tenant's is only listed."""
    await onboard(api, "sched-a", train=False, schedule="0 3 * * *")
    page = await browser.new_page(viewport=VIEWPORT)
    await sign_in(page, api)
    await page.click("#nav-schedules")
    tenant_row = page.locator("[data-test=schedules] tr[data-schedule='tenant-sched-a']")
    await expect(tenant_row).to_contain_text("0 3 * * *")
    await expect(tenant_row.locator("[data-test=next-fire]")).to_have_text(UTC)
    await expect(tenant_row.locator("[data-test=delete-schedule]")).to_have_count(0)

    await page.fill("#schedule-name", "nightly-classic")
    await page.fill("#schedule-cron", "30 1 * * *")
    await page.select_option("#schedule-kind", "classic")
    await page.click("#schedule-save")
    await expect(page.locator("[data-test=confirm-text]")).to_contain_text("nightly-classic")
    await page.click("[data-test=confirm-yes]")
    row = page.locator("[data-test=schedules] tr[data-schedule='nightly-classic']")
    await expect(row).to_contain_text("every classic endpoint tenant")
    saved = await api.get("/v1/schedules/nightly-classic", headers=ADMIN)
    assert saved.status == 200
    assert (await saved.json())["target_kind"] == "classic"
    await page.screenshot(path=str(SCREENSHOTS / "schedules.png"), full_page=True)

    await row.locator("[data-test=delete-schedule]").click()
    await page.click("[data-test=confirm-yes]")
    await expect(row).to_have_count(0)
    assert (await api.get("/v1/schedules/nightly-classic", headers=ADMIN)).status == 404
    listed = await (await api.get("/v1/schedules", headers=ADMIN)).json()
    assert [s["name"] for s in listed["items"]] == ["tenant-sched-a"]
    await expect(tenant_row).to_be_visible()
    await page.close()


async def test_dates_follow_the_zone_switch_and_name_their_zone(
    api: ApiTestClient, redis: aioredis.Redis, browser: Browser
) -> None:
    """In a New York browser dates read EST; switched to UTC they read UTC, on the tenant table
    and the chart's caption, and the choice survives a reload; the runs chart spans its runs
    in one-minute bars instead of 24 hourly ones."""
    store = Store(redis)
    for tenant_id in ("zone-a", "zone-b"):
        await onboard(api, tenant_id, data_path=f"data/{tenant_id}/a.csv", train=False)
        answer = await api.post(f"/v1/tenants/{tenant_id}/retrains", headers=ADMIN)
        run = await store.get_run((await answer.json())["run"]["id"])
        assert run is not None
        await put_in_state(store, run, RunState.FAILED)
    context = await browser.new_context(
        viewport=VIEWPORT, timezone_id="America/New_York", locale="en-US"
    )
    page = await context.new_page()
    await sign_in(page, api)
    created = page.locator(f"{ROWS}[data-tenant=zone-a] td").last
    await expect(created).to_have_text(EASTERN)
    await expect(page.locator("#zone-local")).to_have_attribute("aria-pressed", "true")
    chart = page.locator("svg[data-test=activity]")
    await expect(chart).to_have_attribute("data-bucket-seconds", re.compile(r"^\d+$"))
    assert int(await chart.get_attribute("data-bucket-seconds") or "0") < 3600  # not hourly
    totals = await chart.locator("g.bar").evaluate_all("bars => bars.map((b) => +b.dataset.total)")
    assert len(totals) >= 12  # the span of the two runs in a dozen bars, not 24 hourly ones
    assert sum(totals) == 2
    await expect(page.locator("[data-test=activity-caption]")).to_contain_text("(EST)")

    await page.click("#zone-utc")
    await expect(page.locator("#zone-utc")).to_have_attribute("aria-pressed", "true")
    created = page.locator(f"{ROWS}[data-tenant=zone-a] td").last
    await expect(created).to_have_text(UTC)
    await expect(page.locator("[data-test=activity-caption]")).to_contain_text("(UTC)")
    await page.screenshot(path=str(SCREENSHOTS / "fleet-utc.png"), full_page=True)
    await page.reload()
    await expect(page.locator(f"{ROWS}[data-tenant=zone-a] td").last).to_have_text(UTC)
    await goto(page, api, "#/tenant/zone-a")
    await expect(page.locator("[data-test=runs] tbody tr td").nth(4)).to_have_text(UTC)
    await page.click("#zone-local")
    await expect(page.locator("[data-test=runs] tbody tr td").nth(4)).to_have_text(EASTERN)
    await context.close()
