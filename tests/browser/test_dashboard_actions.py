"""The dashboard acts, in headless Chromium against the real API app on real Redis: cancel a
run, retrain a tenant and retry a batch's failed runs, each only after its confirmation and
only where the key may; every outcome is checked in the records the API wrote."""

from __future__ import annotations

import uuid

import redis.asyncio as aioredis
from playwright.async_api import Browser, Page, expect

from tests.browser.conftest import SCREENSHOTS, VIEWPORT
from tests.integration.conftest_api import ADMIN, ADMIN_KEY, ApiTestClient, onboard
from tests.integration.test_archive import LATER, archiver, blobs, finished_runs
from tests.runs import put_in_state
from worker.blobs import BlobStore
from worker.keys import Keys
from worker.redisio import reply
from worker.run.model import Run, RunState
from worker.schemas import utcnow
from worker.store import Store

__all__ = ["blobs"]  # the archive container fixture (where the API app reads archived runs)
WAIT_MS = 15_000


async def sign_in(page: Page, api: ApiTestClient, key: str = ADMIN_KEY) -> None:
    """Open /ui and sign in with ``key``."""
    await page.goto(str(api.make_url("/ui")))
    await page.fill("#key", key)
    await page.click("#login")
    await expect(page.locator("#sign-out")).to_be_visible()


async def goto(page: Page, api: ApiTestClient, route: str) -> None:
    """Show a dashboard route (``#/...``)."""
    await page.goto(str(api.make_url(f"/ui{route}")))


async def retrained(api: ApiTestClient, redis: aioredis.Redis, tenant_id: str) -> Run:
    """A new tenant with data and one queued run (no worker runs it here)."""
    await onboard(api, tenant_id, data_path=f"data/{tenant_id}/a.csv", train=False)
    answer = await api.post(f"/v1/tenants/{tenant_id}/retrains", headers=ADMIN)
    assert answer.status == 202, await answer.text()
    run = await Store(redis).get_run((await answer.json())["run"]["id"])
    assert run is not None
    return run


async def cancel_requested(redis: aioredis.Redis, run_id: str) -> bool:
    """Whether the run's record carries a cancel request."""
    return bool(await reply(redis.hget(Keys().run(run_id), "cancel")))


async def test_cancelling_a_run_asks_first_and_records_the_request(
    api: ApiTestClient, redis: aioredis.Redis, browser: Browser
) -> None:
    """Declining the dialog sends nothing; confirming records the cancel request on the run;
    once the run has ended the button is gone."""
    run = await retrained(api, redis, "cancel-a")
    page = await browser.new_page(viewport=VIEWPORT)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await sign_in(page, api)
    await goto(page, api, f"#/run/{run.id}")
    button = page.locator("#cancel-run")
    await button.click()
    dialog = page.locator("dialog[data-test=confirm]")
    await expect(dialog).to_be_visible()
    await expect(dialog.locator("[data-test=confirm-text]")).to_contain_text(run.id[:8])
    await page.screenshot(path=str(SCREENSHOTS / "action-cancel-confirm.png"))
    await dialog.locator("[data-test=confirm-no]").click()
    await expect(dialog).to_have_count(0)
    assert not await cancel_requested(redis, run.id)

    await button.click()
    await page.locator("[data-test=confirm-yes]").click()
    await expect(page.locator("[data-test=action-done]")).to_contain_text("Cancel requested")
    assert await cancel_requested(redis, run.id)
    await expect(button).to_be_disabled()

    await put_in_state(Store(redis), run, RunState.CANCELLED)
    await expect(page.locator("h1 .badge")).to_have_text("cancelled", timeout=WAIT_MS)
    await expect(button).to_have_count(0)
    await page.screenshot(path=str(SCREENSHOTS / "action-cancelled.png"), full_page=True)
    assert errors == []
    await page.close()


async def test_retrain_and_cancel_from_the_tenant_page_with_the_tenants_own_key(
    api: ApiTestClient, redis: aioredis.Redis, browser: Browser
) -> None:
    """A tenant key retrains its own tenant after confirming, and cancels that run from the
    runs table; rollback is not offered without a previous model."""
    created = await onboard(api, "own-a", data_path="data/own-a/a.csv", train=False)
    store = Store(redis)
    page = await browser.new_page(viewport=VIEWPORT)
    await sign_in(page, api, created["api_key"])
    await expect(page.locator("#retrain")).to_be_visible()
    await expect(page.locator("#rollback")).to_be_hidden()
    await page.click("#retrain")
    await expect(page.locator("[data-test=confirm-text]")).to_contain_text("Retrain own-a")
    await page.click("[data-test=confirm-yes]")
    link = page.locator("[data-test=action-done] [data-test=action-run]")
    await expect(link).to_be_visible()
    (run_id,) = await store.tenant_run_ids("own-a")
    assert (await link.get_attribute("href")) == f"#/run/{run_id}"

    row = page.locator(f"[data-test=runs] tr[data-run='{run_id}']")
    await row.locator("[data-test=cancel-run]").click()
    await page.click("[data-test=confirm-yes]")
    await expect(page.locator("[data-test=action-done]")).to_contain_text("Cancel requested")
    assert await cancel_requested(redis, run_id)
    await page.screenshot(path=str(SCREENSHOTS / "action-tenant-retrain.png"), full_page=True)
    await page.close()


async def test_retry_failed_starts_a_batch_of_the_failed_tenants(
    api: ApiTestClient, redis: aioredis.Redis, browser: Browser
) -> None:
    """The batch page offers "Retry failed" only with failures; confirming starts a new batch
    of exactly the failed tenants, linked from the notice."""
    ids = ["rf-a", "rf-b", "rf-c"]
    for tenant_id in ids:
        await onboard(api, tenant_id, data_path=f"data/{tenant_id}/a.csv", train=False)
    answer = await api.post("/v1/batches", json={"tenant_ids": ids}, headers=ADMIN)
    batch_id = (await answer.json())["batch_id"]
    store = Store(redis)
    runs = await store.get_runs(await store.batch_run_ids(batch_id))
    page = await browser.new_page(viewport=VIEWPORT)
    await sign_in(page, api)
    await goto(page, api, f"#/batch/{batch_id}")
    await expect(page.locator("[data-test=done] .value")).to_have_text("0 / 3")
    retry = page.locator("#retry-failed")
    await expect(retry).to_be_hidden()
    states = [RunState.FAILED, RunState.SUCCEEDED, RunState.FAILED]
    for run, state in zip(runs, states, strict=True):
        await put_in_state(store, run, state)
    await expect(retry).to_have_text("Retry failed (2)", timeout=WAIT_MS)
    await retry.click()
    await expect(page.locator("[data-test=confirm-text]")).to_contain_text("2 tenants")
    await page.screenshot(path=str(SCREENSHOTS / "action-retry-confirm.png"))
    await page.click("[data-test=confirm-yes]")
    link = page.locator("[data-test=retry-batch]")
    await expect(link).to_be_visible()
    newest = await redis.zrevrange(Keys().batches, 0, 0)
    assert (await link.get_attribute("href")) == f"#/batch/{newest[0]}"
    retried = await store.get_runs(await store.batch_run_ids(newest[0]))
    assert sorted(r.tenant_id for r in retried) == ["rf-a", "rf-c"]
    await link.click()
    await expect(page.locator("[data-test=done] .value")).to_have_text("0 / 2")
    await expect(page.locator("#retry-failed")).to_be_hidden()
    await page.close()


async def test_archived_runs_are_marked_on_the_tenant_and_run_pages(
    api: ApiTestClient, redis: aioredis.Redis, blobs: BlobStore, browser: Browser
) -> None:
    """Runs the archiver moved to blob storage are listed with an "archived" badge and a note;
    an archived run's page says where it was read from and offers no cancel."""
    tenant_id = f"arch-{uuid.uuid4().hex[:8]}"  # the container outlives Redis between tests
    store = Store(redis)
    await onboard(api, tenant_id, train=False)
    runs = await finished_runs(store, tenant_id, 3)
    done = await archiver(store, blobs, keep_runs=1).archive_once(utcnow() + LATER)
    assert done.archived == 2
    live = set(await store.tenant_run_ids(tenant_id, 0, 10))
    archived = [run.id for run in runs if run.id not in live]
    assert len(archived) == 2
    page = await browser.new_page(viewport=VIEWPORT)
    await sign_in(page, api)
    await goto(page, api, f"#/tenant/{tenant_id}")
    rows = page.locator("[data-test=runs] tr[data-run]")
    await expect(rows).to_have_count(3)
    await expect(page.locator("[data-test=runs] tr[data-archived=true]")).to_have_count(2)
    for run_id in archived:
        row = page.locator(f"[data-test=runs] tr[data-run='{run_id}']")
        await expect(row.locator("[data-test=archived]")).to_have_text("archived")
    await expect(page.locator("[data-test=archived-note]")).to_be_visible()
    await page.screenshot(path=str(SCREENSHOTS / "tenant-archived-runs.png"), full_page=True)

    await goto(page, api, f"#/run/{archived[0]}")
    await expect(page.locator("[data-test=archived-note]")).to_contain_text("archive")
    await expect(page.locator("h1 [data-test=archived]")).to_be_visible()
    await expect(page.locator("#cancel-run")).to_have_count(0)
    await page.close()


async def test_an_archived_batch_shows_its_summary_and_offers_no_retry(
    api: ApiTestClient, redis: aioredis.Redis, blobs: BlobStore, browser: Browser
) -> None:
    """A batch the archiver summarised reads as archived with its final counts; its runs left
    its list, so the page lists none and offers no retry (the API answers 404 for one)."""
    tenant_id = f"archb-{uuid.uuid4().hex[:8]}"
    await onboard(api, tenant_id, data_path=f"data/{tenant_id}/a.csv", train=False)
    answer = await api.post("/v1/batches", json={"tenant_ids": [tenant_id]}, headers=ADMIN)
    batch_id = (await answer.json())["batch_id"]
    store = Store(redis)
    (run,) = await store.get_runs(await store.batch_run_ids(batch_id))
    await put_in_state(store, run, RunState.FAILED)
    report = await archiver(store, blobs).archive_once(utcnow() + LATER)
    assert report.batches == 1
    assert await store.get_batch(batch_id) is None
    page = await browser.new_page(viewport=VIEWPORT)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await sign_in(page, api)
    await goto(page, api, f"#/batch/{batch_id}")
    await expect(page.locator("[data-test=archived-note]")).to_contain_text("Archived")
    await expect(page.locator("[data-test=batch-state]")).to_have_text("Failed")
    await expect(page.locator("[data-test=counts] [data-key=failed]")).to_contain_text("1")
    await expect(page.locator("#retry-failed")).to_be_hidden()
    retry = await api.post(f"/v1/batches/{batch_id}/retry-failed", headers=ADMIN)
    assert retry.status == 404
    assert errors == []
    await page.close()
