"""The dashboard in headless Chromium against a real local stack: an operator follows a bulk
retrain and rolls a tenant back from the page; a tenant key sees nothing of other tenants."""

from __future__ import annotations

import asyncio
import io
import re
import time
from typing import Any

import pytest
from playwright.async_api import Browser, Page, Response, expect

from emulator import datagen
from emulator.training import parse_csv
from producer.cli.client import ApiClient
from producer.devtools.demo import FEATURES, Demo
from producer.devtools.processes import console_script
from producer.schemas import TenantCreate
from tests.browser.conftest import SCREENSHOTS, VIEWPORT, Stack
from worker.evaluate import Gate
from worker.schemas import ClassicTarget, NewServiceTarget, Run

pytestmark = pytest.mark.timeout(480)

RESOURCE = "Bike Rental [trained model]"
TENANTS = [("shop-a", "classic"), ("shop-b", "classic"), ("station-c", "new")]
WAIT_MS = 120_000


async def onboard(admin: ApiClient, scorer: Demo) -> dict[str, str]:
    """Onboard the tenants with data and wait for their first models; returns their keys."""
    async with scorer.session.get(f"{scorer.emulator_url}/_emulator/config") as reply:
        config = await reply.json()
    scoring = next(
        s["id"]
        for s in config["workspaces"][0]["web_services"]
        if s["kind"] == "predictive" and s["model"] == "bike-rental"
    )
    keys: dict[str, str] = {}
    first: list[str] = []
    for tenant_id, kind in TENANTS:
        target: ClassicTarget | NewServiceTarget = (
            ClassicTarget(web_service_id=scoring, resource_name=RESOURCE)
            if kind == "classic"
            else NewServiceTarget(template_service="bike-rental-template")
        )
        created = await admin.create_tenant(
            TenantCreate(
                id=tenant_id,
                display_name=f"Bike shop {tenant_id}",
                target=target,
                gate=Gate(max_regression=None),  # every evaluated model deploys
                train=False,
            )
        )
        keys[tenant_id] = created.api_key
        csv = datagen.bike_rental_csv(tenant_id, 400, seed=1)
        await admin.upload(tenant_id, io.BytesIO(csv.encode()))
        first.append((await admin.retrain(tenant_id, reason="onboarding")).run.id)
    runs = await wait_runs(admin, first)
    assert [r.state.value for r in runs] == ["succeeded"] * len(TENANTS)
    return keys


async def wait_runs(admin: ApiClient, run_ids: list[str], within: float = 120) -> list[Run]:
    """Wait until every run has ended (fails with their states otherwise)."""
    deadline = time.monotonic() + within
    while True:
        runs = [await admin.run(r) for r in run_ids]
        if all(r.state.terminal for r in runs):
            return runs
        assert time.monotonic() < deadline, [r.state.value for r in runs]
        await asyncio.sleep(0.5)


def probe_rows() -> list[list[str]]:
    """Feature rows to score through a tenant's endpoint."""
    rows = parse_csv(datagen.bike_rental_csv("probe", 24, seed=5))
    return [[row[c] for c in FEATURES] for row in rows if row["hr"] in {"8", "12", "17", "22"}]


async def scores(admin: ApiClient, scorer: Demo, tenant_id: str) -> list[float]:
    """Predictions of the tenant's deployed model through RRS (its own endpoint)."""
    tenant = await admin.get_tenant(tenant_id)
    return [float(v) for v in await scorer.score(tenant, probe_rows())]


async def sign_in(page: Page, stack: Stack, key: str) -> None:
    """Open /ui and sign in with ``key``."""
    await page.goto(f"{stack.api_url}/ui")
    await page.fill("#key", key)
    await page.click("#login")
    await expect(page.locator("#sign-out")).to_be_visible()


async def shot(page: Page, name: str) -> None:
    """Save a full-page screenshot as a test artifact."""
    await page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


@pytest.fixture(scope="module")
def fleet_keys() -> dict[str, str]:
    """Tenant keys of the onboarded fleet, filled by whichever test onboards it first."""
    return {}


async def test_operator_follows_a_bulk_retrain_and_rolls_back_from_the_page(
    browser: Browser,
    stack: Stack,
    admin: ApiClient,
    scorer: Demo,
    fleet_keys: dict[str, str],
) -> None:
    """Fleet page, bulk retrain from the CLI to 100% on the batch page, the new version on the
    tenant's chart, and a rollback from the page after which the endpoint serves the old model."""
    await scorer.emulator_settings({"min_job_seconds": 1.0})  # jobs take a moment, as real ones
    fleet_keys.update(await onboard(admin, scorer))
    first_scores = await scores(admin, scorer, "shop-a")
    first_model = (await admin.get_tenant("shop-a")).deployed
    assert first_model is not None
    for tenant_id, _ in TENANTS:  # new data, so the bulk retrain trains a different model
        csv = datagen.bike_rental_csv(tenant_id, 400, seed=2, drift=True)
        await admin.upload(tenant_id, io.BytesIO(csv.encode()))

    page = await browser.new_page(viewport=VIEWPORT)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await sign_in(page, stack, stack.admin_key)
    await expect(page).to_have_url(re.compile(r"#/fleet$"))
    await expect(page.locator("[data-test=tenant-total] .value")).to_have_text("3")
    await expect(page.locator("[data-test=tenants] tr[data-tenant]")).to_have_count(3)
    await expect(page.locator("[data-test=runs-by-state] [data-key=succeeded]")).to_contain_text(
        "3"
    )

    bulk = await asyncio.create_subprocess_exec(
        *[console_script("retrainq"), "bulk", "--all", "--reason", "nightly"],
        *["--api-url", stack.api_url, "--api-key", stack.admin_key],
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(bulk.communicate(), 60)
    assert bulk.returncode == 0, err.decode()
    batch_id = out.decode().strip()
    assert re.fullmatch(r"[0-9a-f]{32}", batch_id), out

    await expect(page.locator(f"[data-batch='{batch_id}']")).to_be_visible(timeout=10_000)
    await page.click(f"[data-batch='{batch_id}'] a")
    progress = page.locator("[data-test=progress]")
    await expect(progress).to_be_visible()
    seen = {await progress.get_attribute("data-progress")}
    await expect(progress).to_have_attribute("data-progress", "100", timeout=WAIT_MS)
    seen.add(await progress.get_attribute("data-progress"))
    await expect(page.locator("[data-test=done] .value")).to_have_text("3 / 3")
    await expect(page.locator("svg.timeline a.row")).to_have_count(3)
    # The classic tenants' runs scored both models on held-out rows: a scoring segment each.
    scoring = page.locator("svg.timeline a.row rect[fill='#0b7285']")
    await expect(scoring).to_have_count(2)
    await expect(page.locator("[data-test=counts] [data-key=succeeded]")).to_contain_text("3")
    await expect(page.locator("[data-test=no-failures]")).to_be_visible()
    await shot(page, "batch")

    after = await admin.tenant_runs("shop-a", limit=1)
    bulk_run = after.items[0]
    assert bulk_run.batch_id == batch_id
    assert bulk_run.state.value == "succeeded"
    bulk_scores = await scores(admin, scorer, "shop-a")
    assert bulk_scores != first_scores  # the bulk retrain deployed a different model

    await page.goto(f"{stack.api_url}/ui#/tenant/shop-a")
    chart = page.locator("[data-test=metric-chart]")
    newest = chart.locator(f"g.point[data-seq='{bulk_run.seq}']")
    await expect(newest).to_have_attribute("data-kind", "deployed")
    await expect(newest.locator("[data-test=serving]")).to_have_count(1)
    await expect(chart.locator("g.point")).to_have_count(2)
    await expect(page.locator("[data-test=serving-version]")).to_contain_text(f"v{bulk_run.seq}")

    await page.click("#rollback")
    await expect(page.locator("[data-test=confirm-text]")).to_contain_text("previous model")
    await page.click("[data-test=confirm-yes]")
    await expect(page.locator("[data-test=action-run]")).to_be_visible()
    rollback_id = await wait_for_latest_run(admin, "shop-a", other_than=bulk_run.id)
    (rollback,) = await wait_runs(admin, [rollback_id])
    assert rollback.state.value == "succeeded"
    assert rollback.rollback_to == first_model.run_id
    assert await scores(admin, scorer, "shop-a") == first_scores  # the old model serves again

    rolled = chart.locator(f"g.point[data-seq='{rollback.seq}']")
    await expect(rolled).to_have_attribute("data-kind", "rollback", timeout=10_000)
    await expect(rolled.locator("[data-test=serving]")).to_have_count(1)
    await expect(newest.locator(".rolled-back-ring")).to_have_count(1)
    await shot(page, "tenant")

    await page.goto(f"{stack.api_url}/ui#/run/{bulk_run.id}")
    await expect(page.locator("[data-test=bes-job]")).to_have_text(bulk_run.bes_job_id or "?")
    await expect(page.locator("[data-test=decision]")).to_contain_text("accepted")
    await expect(page.locator("[data-test=phases] tr[data-phase]")).to_have_count(
        len(bulk_run.phases)
    )
    await expect(page.locator("[data-test=metrics]")).to_contain_text(
        "Coefficient of Determination"
    )
    await shot(page, "run")

    await page.goto(f"{stack.api_url}/ui#/fleet")
    await expect(page.locator(f"[data-batch='{batch_id}']")).to_contain_text("3 / 3")
    await expect(page.locator("[data-test=runs-by-state] [data-key=succeeded]")).to_contain_text(
        "7"
    )
    await shot(page, "fleet")
    assert errors == []
    assert len(seen) >= 1


async def wait_for_latest_run(admin: ApiClient, tenant_id: str, other_than: str) -> str:
    """The id of the tenant's newest run once it is not ``other_than``."""
    deadline = time.monotonic() + 30
    while True:
        page = await admin.tenant_runs(tenant_id, limit=1)
        if page.items and page.items[0].id != other_than:
            return page.items[0].id
        assert time.monotonic() < deadline, "no new run appeared"
        await asyncio.sleep(0.3)


async def test_a_tenant_key_sees_and_acts_on_its_own_tenant_only(
    browser: Browser, stack: Stack, admin: ApiClient, scorer: Demo, fleet_keys: dict[str, str]
) -> None:
    """Another tenant's page shows not-found (the API answers 404), admin pages 403, and the
    page's own fetch with the key cannot retrain or roll back another tenant."""
    if not fleet_keys:  # run on its own: onboard the fleet here
        fleet_keys.update(await onboard(admin, scorer))
    page = await browser.new_page(viewport=VIEWPORT)
    statuses: dict[str, int] = {}

    def record(response: Response) -> None:
        path = response.url.split("/", 3)[-1]
        if path.startswith("v1/"):
            statuses[f"{response.request.method} /{path}"] = response.status

    page.on("response", record)
    await sign_in(page, stack, fleet_keys["shop-a"])
    await expect(page).to_have_url(re.compile(r"#/tenant/shop-a$"))
    await expect(page.locator("[data-test=metric-chart]")).to_be_visible()
    await expect(page.locator("#retrain")).to_be_visible()
    await expect(page.locator("nav a", has_text="Fleet")).to_have_count(0)
    await expect(page.locator("nav a", has_text="Schedules")).to_have_count(0)

    await page.goto(f"{stack.api_url}/ui#/tenant/shop-b")
    await expect(page.locator("[data-test=not-found]")).to_contain_text("shop-b")
    await expect(page.locator("#rollback")).to_have_count(0)
    await expect(page.locator("#retrain")).to_have_count(0)
    assert statuses["GET /v1/tenants/shop-b"] == 404
    await shot(page, "tenant-key-other-tenant")

    other_run = (await admin.tenant_runs("shop-b", limit=1)).items[0]
    async with page.expect_response(lambda r: f"/v1/runs/{other_run.id}" in r.url) as run_call:
        await page.goto(f"{stack.api_url}/ui#/run/{other_run.id}")
    assert (await run_call.value).status == 404
    await expect(page.locator("[data-test=not-found]")).to_contain_text(other_run.id)

    async with page.expect_response(lambda r: "/v1/fleet" in r.url) as fleet_call:
        await page.goto(f"{stack.api_url}/ui#/fleet")
    assert (await fleet_call.value).status == 403
    await expect(page.locator("[data-test=forbidden]")).to_be_visible()
    await page.goto(f"{stack.api_url}/ui#/schedules")
    await expect(page.locator("[data-test=forbidden]")).to_be_visible()
    await expect(page.locator("#schedule-form")).to_have_count(0)

    acted: dict[str, Any] = await page.evaluate(
        """async () => {
            const auth = {Authorization: `Bearer ${sessionStorage.getItem("retrainq.key")}`};
            const post = (p) => fetch(p, {method: "POST", headers: auth}).then((r) => r.status);
            return {
                retrain: await post("/v1/tenants/shop-b/retrains"),
                rollback: await post("/v1/tenants/shop-b/rollback"),
                batches: await fetch("/v1/batches", {headers: auth}).then((r) => r.status),
                cancel: await fetch("/v1/runs/OTHER", {method: "DELETE", headers: auth})
                    .then((r) => r.status),
            };
        }""".replace("OTHER", other_run.id)
    )
    assert acted == {"retrain": 404, "rollback": 404, "batches": 403, "cancel": 404}
    assert (await admin.tenant_runs("shop-b", limit=1)).items[0].id == other_run.id


async def test_a_wrong_key_is_refused_at_the_login_form(browser: Browser, stack: Stack) -> None:
    """An unknown key leaves the user on the login form with a message."""
    page = await browser.new_page(viewport=VIEWPORT)
    await page.goto(f"{stack.api_url}/ui")
    await shot(page, "login")
    await page.fill("#key", "not-a-key")
    await page.click("#login")
    await expect(page.locator("#login-error")).to_have_text("That key was not accepted.")
    await expect(page.locator("#sign-out")).to_have_count(0)
