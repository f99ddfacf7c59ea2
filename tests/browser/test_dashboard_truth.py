"""The dashboard tells the truth in headless Chromium, against the real API app on real Redis:
a batch whose runs failed reads failed and red, its failures fall in groups by class and shape,
runs still going are among the slowest, a failed run's gate was not reached, a retrying run
shows its last error, and a throttled service says so on the fleet page."""

from __future__ import annotations

from datetime import timedelta

import redis.asyncio as aioredis
from playwright.async_api import Browser, Page, expect

from tests.browser.conftest import SCREENSHOTS, VIEWPORT
from tests.integration.conftest_api import ADMIN, ADMIN_KEY, ApiTestClient, onboard
from tests.runs import put_in_state
from worker.keys import Keys
from worker.run import model as m
from worker.run.ledger import Placement
from worker.run.model import Run, RunState
from worker.schemas import utcnow
from worker.store import Store

WAIT_MS = 15_000
MISSING = "BES job Failed: BlobNotFound: The blob 'data/{tenant}/a.csv' was not found."
MODULE = "BES job Failed: ModuleExecutionError: the job failed (injected fault)."


async def _batch(api: ApiTestClient, redis: aioredis.Redis, ids: list[str]) -> list[Run]:
    for tenant_id in ids:
        await onboard(api, tenant_id, data_path=f"data/{tenant_id}/a.csv", train=False)
    answer = await api.post("/v1/batches", json={"tenant_ids": ids}, headers=ADMIN)
    assert answer.status == 202, await answer.text()
    store = Store(redis)
    return await store.get_runs(await store.batch_run_ids((await answer.json())["batch_id"]))


async def _fail(store: Store, run: Run, message: str) -> Run:
    error = message.format(tenant=run.tenant_id)
    return await put_in_state(store, run, RunState.FAILED, error=error, error_code="bes_Failed")


async def _sign_in(page: Page, api: ApiTestClient) -> None:
    await page.goto(str(api.make_url("/ui")))
    await page.fill("#key", ADMIN_KEY)
    await page.click("#login")
    await expect(page.locator("#sign-out")).to_be_visible()


async def test_a_failing_batch_reads_failed_with_grouped_failures_and_running_stragglers(
    api: ApiTestClient, redis: aioredis.Redis, browser: Browser
) -> None:
    """While one run trains it is among the slowest runs ("so far"); once it fails too the
    batch reads Failed with a red bar, and two groups of failures share the code bes_Failed."""
    store = Store(redis)
    runs = await _batch(api, redis, ["fa", "fb", "fc", "fd"])
    for run in runs[:2]:
        await _fail(store, run, MISSING)
    await _fail(store, runs[2], MODULE)
    going = await put_in_state(store, runs[3], RunState.WAITING_SLOT)
    going = await put_in_state(
        store, await put_in_state(store, going, RunState.SUBMITTING), RunState.TRAINING
    )
    page = await browser.new_page(viewport=VIEWPORT)
    await _sign_in(page, api)
    await page.goto(str(api.make_url(f"/ui#/batch/{runs[0].batch_id}")))
    await expect(page.locator("[data-test=batch-state]")).to_have_text("Running")
    slow = page.locator(f"[data-test=slowest] tr[data-run='{going.id}']")
    await expect(slow).to_contain_text("so far", timeout=WAIT_MS)
    await _fail(store, going, MODULE)
    await expect(page.locator("[data-test=batch-state]")).to_have_text("Failed", timeout=WAIT_MS)
    bar = page.locator("[data-test=progress]")
    await expect(bar).to_have_attribute("data-state", "failed")
    await expect(bar.locator("[data-outcome]")).to_have_count(1)
    await expect(bar.locator("[data-outcome=failed]")).to_be_visible()
    groups = page.locator("[data-test=failures] > li")
    await expect(groups).to_have_count(2)
    await expect(groups.nth(0)).to_contain_text("2 \u00d7 failed: bes_Failed/BlobNotFound")
    await expect(groups.nth(1)).to_contain_text("2 \u00d7 failed: bes_Failed/ModuleExecutionError")
    await page.screenshot(path=str(SCREENSHOTS / "batch-failed.png"), full_page=True)

    await page.goto(str(api.make_url(f"/ui#/run/{runs[0].id}")))
    await expect(page.locator("[data-test=no-decision]")).to_contain_text("not reached")
    await page.close()


async def test_a_retrying_run_and_a_throttled_service_are_shown(
    api: ApiTestClient, redis: aioredis.Redis, browser: Browser
) -> None:
    """A run retrying its submit shows the 429 it got, its failed tries and its next try; the
    fleet page marks the throttled service with the time left."""
    store = Store(redis)
    (run,) = await _batch(api, redis, ["retry-a"])
    run = await put_in_state(
        store, await put_in_state(store, run, RunState.WAITING_SLOT), RunState.SUBMITTING
    )
    retry = m.RetryLater(
        step_failures=2,
        last_error="BES answered 429 Too Many Requests",
        next_attempt_at=utcnow() + timedelta(minutes=5),
    )
    await store.ledger.apply(run, (retry,), utcnow(), Placement(due_in=300))
    await redis.set(Keys().throttle("default"), "1", px=600_000)
    page = await browser.new_page(viewport=VIEWPORT)
    await _sign_in(page, api)
    await page.goto(str(api.make_url(f"/ui#/run/{run.id}")))
    await expect(page.locator("[data-test=last-error]")).to_have_text(retry.last_error)
    await expect(page.locator("[data-test=step-failures]")).to_have_text("2")
    await expect(page.locator("[data-test=next-attempt]")).not_to_have_text("\u2013")
    await expect(page.locator("[data-test=no-decision]")).to_have_text("not decided yet")
    await page.screenshot(path=str(SCREENSHOTS / "run-retrying.png"), full_page=True)
    await page.goto(str(api.make_url("/ui#/")))
    badge = page.locator("[data-service=default] [data-test=throttled]")
    await expect(badge).to_contain_text("throttled, resumes in")
    await page.screenshot(path=str(SCREENSHOTS / "fleet-throttled.png"), full_page=True)
    await page.close()
