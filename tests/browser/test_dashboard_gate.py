"""The gate's comparison on the dashboard, in headless Chromium against a real local stack:
runs judged on held-out rows (a candidate deployed on drifted data, one rejected on shuffled
labels), a run that failed before its gate and a new web service judged on reported figures.
Every figure on the page is checked against what the API recorded for the run."""

from __future__ import annotations

import io
from typing import Any

import pytest
from playwright.async_api import Browser, Locator, Page, expect

from emulator import datagen
from producer.cli.client import ApiClient
from producer.cli.gate_view import candidate_range
from producer.devtools.demo import Demo
from producer.schemas import TenantCreate
from tests.browser.conftest import SCREENSHOTS, VIEWPORT, Stack
from tests.browser.test_dashboard import RESOURCE, sign_in, wait_runs
from tests.integration.test_holdout_gate import shuffled
from worker.evaluate import Gate
from worker.schemas import ClassicTarget, NewServiceTarget, Run

pytestmark = pytest.mark.timeout(480)


async def scoring_service(scorer: Demo) -> str:
    """The id of the emulator's bike-rental predictive web service."""
    async with scorer.session.get(f"{scorer.emulator_url}/_emulator/config") as reply:
        config = await reply.json()
    return str(
        next(
            s["id"]
            for s in config["workspaces"][0]["web_services"]
            if s["kind"] == "predictive" and s["model"] == "bike-rental"
        )
    )


async def retrain_with(admin: ApiClient, tenant_id: str, csv: str) -> Run:
    """Upload ``csv`` as the tenant's next data version, retrain, and wait for the run's end."""
    await admin.upload(tenant_id, io.BytesIO(csv.encode()))
    (run,) = await wait_runs(admin, [(await admin.retrain(tenant_id)).run.id], within=180)
    return run


async def history(admin: ApiClient, scorer: Demo) -> dict[str, Run]:
    """Runs of the scenario by name, each ended as the scenario needs it."""
    await scorer.emulator_settings({"min_job_seconds": 0.5})
    classic = ClassicTarget(web_service_id=await scoring_service(scorer), resource_name=RESOURCE)
    gate = Gate(threshold=0.3)  # judged on held-out rows: the API's default for new tenants
    await admin.create_tenant(TenantCreate(id="pair-a", target=classic, gate=gate, train=False))
    runs = {
        "first": await retrain_with(admin, "pair-a", datagen.bike_rental_csv("pair-a", 400, 1)),
        "drifted": await retrain_with(
            admin, "pair-a", datagen.bike_rental_csv("pair-a", 400, seed=2, drift=True)
        ),
        "shuffled": await retrain_with(
            admin, "pair-a", shuffled(datagen.bike_rental_csv("pair-a", 400, seed=3))
        ),
    }
    missing = "data/pair-b/none.csv"  # never uploaded: the run fails before its gate
    await admin.create_tenant(
        TenantCreate(id="pair-b", target=classic, data_path=missing, train=False)
    )
    (runs["failed"],) = await wait_runs(admin, [(await admin.retrain("pair-b")).run.id])
    service = NewServiceTarget(template_service="bike-rental-template")
    await admin.create_tenant(TenantCreate(id="pair-c", target=service, train=False))
    runs["reported"] = await retrain_with(
        admin, "pair-c", datagen.bike_rental_csv("pair-c", 400, seed=1)
    )
    states = {name: run.state.value for name, run in runs.items()}
    assert states == {
        "first": "succeeded",
        "drifted": "succeeded",
        "shuffled": "rejected",
        "failed": "failed",
        "reported": "succeeded",
    }, {name: run.error for name, run in runs.items()}
    return runs


def number(value: float | None) -> str:
    """A figure as the dashboard prints it (four decimals)."""
    assert value is not None
    return f"{value:.4f}"


async def floats(locator: Locator, attribute: str) -> float:
    """A numeric attribute of an element."""
    value = await locator.get_attribute(attribute)
    assert value is not None
    return float(value)


async def open_run(page: Page, stack: Stack, run: Run) -> None:
    """The run page, once it shows the run's final state."""
    await page.goto(f"{stack.api_url}/ui#/run/{run.id}")
    await expect(page.locator("h1 .badge")).to_have_text(run.state.value)


async def check_holdout_run(page: Page, run: Run) -> None:
    """The gate card of a run judged on held-out rows matches its recorded decision."""
    decision = run.decision
    assert decision is not None
    assert decision.comparison is not None
    comparison = decision.comparison
    card = page.locator("[data-test=decision]")
    verdict = "accepted" if decision.accepted else "rejected"
    await expect(card.locator("[data-test=verdict]")).to_have_text(verdict)
    await expect(card.locator("[data-test=reason]")).to_have_text(decision.reason)
    await expect(card.locator("[data-test=evaluation]")).to_have_attribute("data-mode", "holdout")
    assert run.holdout is not None
    await expect(card.locator("[data-test=evaluation]")).to_contain_text(
        f"{run.holdout.holdout_rows} rows held out"
    )
    await expect(card.locator("[data-test=champion-value]")).to_have_text(number(decision.baseline))
    await expect(card.locator("[data-test=challenger-value]")).to_have_text(number(decision.value))
    await expect(card.locator("[data-test=holdout-rows]")).to_have_text(
        f"{comparison.holdout_rows} rows"
    )
    assert comparison.difference is not None
    improvement = card.locator("[data-test=improvement]")
    await expect(improvement).to_contain_text(f"{comparison.difference:+.4f}")
    assert comparison.interval_low is not None
    assert comparison.interval_high is not None
    await expect(improvement).to_contain_text(
        f"interval {comparison.interval_low:+.4f} to {comparison.interval_high:+.4f}"
    )
    table = page.locator("[data-test=comparison-metrics]")
    assert comparison.champion_metrics is not None
    for name, value in comparison.challenger_metrics.items():
        row = table.locator(f"tr[data-metric='{name}']")
        await expect(row.locator("[data-test=challenger]")).to_have_text(number(value))
        await expect(row.locator("[data-test=champion]")).to_have_text(
            number(comparison.champion_metrics[name])
        )
    await check_pair(page.locator("[data-test=paired-chart] g.pair"), run)


async def check_pair(pair: Locator, run: Run) -> None:
    """One version's pair: its data match the decision, the dots and whisker sit where the
    values say (higher R² higher on the chart; the whisker spans the candidate's interval)."""
    decision = run.decision
    assert decision is not None
    assert decision.value is not None
    await expect(pair).to_have_count(1)
    state = "accepted" if decision.accepted else "rejected"
    await expect(pair).to_have_attribute("data-accepted", str(decision.accepted).lower())
    await expect(pair).to_have_class(f"pair {state}")
    assert await floats(pair, "data-challenger") == pytest.approx(decision.value)
    challenger_y = await floats(pair.locator("[data-test=challenger]"), "cy")
    if decision.baseline is None:  # the first version: no deployed model, no interval
        await expect(pair.locator("[data-test=champion]")).to_have_count(0)
        await expect(pair.locator("[data-test=whisker]")).to_have_count(0)
        return
    assert await floats(pair, "data-champion") == pytest.approx(decision.baseline)
    champion_y = await floats(pair.locator("[data-test=champion]"), "cy")
    assert (challenger_y < champion_y) == (decision.value > decision.baseline)
    expected = candidate_range(decision)
    assert expected is not None
    assert await floats(pair, "data-low") == pytest.approx(expected[0])
    assert await floats(pair, "data-high") == pytest.approx(expected[1])
    whisker = pair.locator("[data-test=whisker]")
    low_y, high_y = await floats(whisker, "data-y-low"), await floats(whisker, "data-y-high")
    assert low_y > high_y  # the interval's low end is lower on the chart
    # On the same axis as the dots: the value scale maps both the same way.
    scale = (champion_y - challenger_y) / (decision.value - decision.baseline)
    assert low_y - challenger_y == pytest.approx(scale * (decision.value - expected[0]), abs=0.5)


async def test_the_gate_comparison_is_on_the_run_and_tenant_pages(
    browser: Browser, stack: Stack, admin: ApiClient, scorer: Demo
) -> None:
    """Accepted and rejected runs show both models on the same held-out rows, the interval
    and the reason; a failed run says the gate was not reached; a reported run names its
    mode and note; the tenant page draws one pair per version with a whisker where the
    deployed model was compared."""
    runs = await history(admin, scorer)
    page = await browser.new_page(viewport=VIEWPORT)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await sign_in(page, stack, stack.admin_key)

    for name in ("drifted", "shuffled"):
        await open_run(page, stack, runs[name])
        await check_holdout_run(page, runs[name])
        await page.screenshot(path=str(SCREENSHOTS / f"gate-run-{name}.png"), full_page=True)
    drifted = runs["drifted"].decision
    assert drifted is not None
    assert drifted.value is not None
    assert drifted.baseline is not None
    assert drifted.value > drifted.baseline  # the old model is poor on the drifted rows

    await open_run(page, stack, runs["failed"])
    await expect(page.locator("[data-test=no-decision]")).to_have_text(
        "not reached: the run failed before the gate"
    )
    await expect(page.locator("[data-test=paired-chart]")).to_have_count(0)
    await page.screenshot(path=str(SCREENSHOTS / "gate-run-failed.png"), full_page=True)

    reported = runs["reported"]
    await open_run(page, stack, reported)
    mode = page.locator("[data-test=evaluation]")
    await expect(mode).to_have_attribute("data-mode", "reported")
    await expect(mode).to_contain_text("different rows")
    assert reported.evaluation_note
    await expect(page.locator("[data-test=evaluation-note]")).to_have_text(reported.evaluation_note)
    await expect(page.locator("[data-test=paired-chart]")).to_have_count(0)

    await page.goto(f"{stack.api_url}/ui#/tenant/pair-a")
    chart = page.locator("[data-test=paired-chart]")
    await expect(chart.locator("g.pair")).to_have_count(3)
    for name in ("first", "drifted", "shuffled"):
        await check_pair(chart.locator(f"g.pair[data-seq='{runs[name].seq}']"), runs[name])
    await expect(chart.locator("[data-test=whisker]")).to_have_count(2)
    judged = page.locator("[data-test=serving-judged]")
    await expect(judged).to_contain_text(f"on {drifted_rows(runs)} held-out rows")
    await expect(judged).to_contain_text(number(drifted.value))
    await page.screenshot(path=str(SCREENSHOTS / "gate-tenant.png"), full_page=True)

    await page.goto(f"{stack.api_url}/ui#/tenant/pair-c")
    await expect(page.locator("[data-test=paired-chart] [data-test=no-pairs]")).to_be_visible()
    await expect(page.locator("[data-test=reported-versions]")).to_contain_text(
        "1 version was judged on reported figures"
    )
    assert errors == []


def drifted_rows(runs: dict[str, Any]) -> int:
    """The held-out rows of the run that deployed the serving model."""
    decision = runs["drifted"].decision
    assert decision is not None
    assert decision.comparison is not None
    return int(decision.comparison.holdout_rows)
