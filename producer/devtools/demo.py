"""``retrainq demo``: the main job end to end on the local stack, as an operator would run it.

Onboards a bike-rental chain's locations (classic endpoints and new web services) through the
API with generated data, shows their first training, uploads drifted data for every location,
runs a bulk retrain with live progress, prints per tenant the deployed model's metric on the
new rows and the candidate's on the same rows with the gate's decision, scores one tenant
before and after through its own endpoint, and writes an HTML report.
"""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from pydantic import SecretStr
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from emulator import datagen
from emulator.training import parse_csv
from producer.cli import render
from producer.cli.client import ApiClient
from producer.cli.gate_view import candidate_range
from producer.devtools.devstack import DEFAULT_STATE_DIR, read_env_file
from producer.devtools.emulated import predictive_service_ids
from producer.devtools.report import TenantOutcome, render_report
from producer.schemas import BatchCreate, TenantCreate, TenantView
from worker.azureml.arm import ArmClient, StaticToken, runtime_base
from worker.azureml.classic import EndpointsClient
from worker.azureml.rrs import RrsClient
from worker.logs import configure_logging
from worker.schemas import ClassicTarget, NewServiceTarget, Run, RunState
from worker.settings import LogConfig, WorkerSettings

METRIC = "Coefficient of Determination"
FEATURES = [c for c in datagen.BIKE_COLUMNS if c != "cnt"]


@dataclass(frozen=True)
class DemoOptions:
    """Size and outputs of the demo."""

    tenants: int = 40
    new_services: int = 10
    rows: int = 600
    job_seconds: float = 2.0
    report: Path = Path("artifacts/demo-report.html")


def _tenant_ids(options: DemoOptions) -> list[tuple[str, str]]:
    classic = options.tenants - options.new_services
    return [(f"rental{i:03d}", "classic") for i in range(1, classic + 1)] + [
        (f"station{i:03d}", "new") for i in range(1, options.new_services + 1)
    ]


class Demo:
    """The demo's steps, each printing what it does."""

    def __init__(
        self,
        client: ApiClient,
        session: aiohttp.ClientSession,
        settings: WorkerSettings,
        emulator_url: str,
        console: Console,
    ) -> None:
        self.client = client
        self.session = session
        self.settings = settings
        self.emulator_url = emulator_url
        self.console = console

    async def onboard(self, options: DemoOptions) -> list[str]:
        """Onboard every location with its data; returns the first runs' ids."""
        async with self.session.get(f"{self.emulator_url}/_emulator/config") as reply:
            config = await reply.json()
        scoring = predictive_service_ids(config)["bike-rental"]
        run_ids = []
        for tenant_id, kind in _tenant_ids(options):
            target: ClassicTarget | NewServiceTarget = (
                ClassicTarget(web_service_id=scoring, resource_name="Bike Rental [trained model]")
                if kind == "classic"
                else NewServiceTarget(template_service="bike-rental-template")
            )
            await self.client.create_tenant(
                TenantCreate(
                    id=tenant_id,
                    display_name=f"Bike rental {tenant_id}",
                    target=target,
                    train=False,
                )
            )
            csv = datagen.bike_rental_csv(tenant_id, options.rows, seed=1)
            await self.client.upload(tenant_id, io.BytesIO(csv.encode()))
            accepted = await self.client.retrain(tenant_id, reason="onboarding")
            run_ids.append(accepted.run.id)
        return run_ids

    async def emulator_settings(self, values: dict[str, float]) -> None:
        """Change the emulator's run-time settings (job duration)."""
        url = f"{self.emulator_url}/_emulator/settings"
        async with self.session.put(url, json=values) as reply:
            reply.raise_for_status()

    async def follow(self, run_ids: Sequence[str], title: str) -> list[Run]:
        """A progress bar until every run has ended."""
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
        with Progress(*columns, TimeElapsedColumn(), console=self.console) as progress:
            task = progress.add_task(title, total=len(run_ids))
            while True:
                runs = await asyncio.gather(*(self.client.run(r) for r in run_ids))
                done = sum(1 for r in runs if r.state.terminal)
                progress.update(task, completed=done)
                if done == len(run_ids):
                    return list(runs)
                await asyncio.sleep(0.5)

    async def follow_batch(self, batch_id: str) -> None:
        """A progress bar of a bulk retrain, from the batch's counters."""
        status = await self.client.batch(batch_id)
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
        with Progress(*columns, TimeElapsedColumn(), console=self.console) as progress:
            task = progress.add_task("bulk retrain", total=status.total)
            while status.done < status.total:
                await asyncio.sleep(0.5)
                status = await self.client.batch(batch_id)
                description = f"bulk retrain: {render.bar_text(status)}"
                progress.update(task, completed=status.done, description=description)

    async def drift(self, options: DemoOptions) -> None:
        """Upload a drifted data version for every location."""
        for tenant_id, _ in _tenant_ids(options):
            csv = datagen.bike_rental_csv(tenant_id, options.rows, seed=2, drift=True)
            await self.client.upload(tenant_id, io.BytesIO(csv.encode()))

    async def score(self, tenant: TenantView, rows: list[list[str]]) -> list[str]:
        """Predictions of the tenant's deployed model, through its own endpoint or service."""
        azureml = self.settings.azureml
        if isinstance(tenant.target, ClassicTarget):
            endpoints = EndpointsClient(
                self.session,
                azureml.management_url,
                azureml.workspace_id,
                azureml.workspace_token,
            )
            endpoint = await endpoints.get_endpoint(
                tenant.target.web_service_id, tenant.endpoint_name or ""
            )
            assert endpoint is not None
            base, key = endpoint.api_location, endpoint.primary_key
        else:
            arm = ArmClient(
                self.session,
                azureml.arm_url,
                azureml.subscription_id,
                azureml.resource_group,
                StaticToken(azureml.arm_token),
            )
            service = await arm.get(tenant.service_name or "")
            assert service is not None
            base, key = runtime_base(service), (await arm.list_keys(service.name)).primary
        scored = await RrsClient(self.session).score(base, key, FEATURES, rows)
        return [str(row.get("Scored Labels")) for row in scored]


def _outcome(tenant: TenantView, after: Run | None) -> TenantOutcome:
    """The tenant's line: what the gate of its bulk retrain compared and decided."""
    deployed_to = tenant.endpoint_name or tenant.service_name or ""
    decision = after.decision if after else None
    interval = candidate_range(decision) if decision else None
    comparison = decision.comparison if decision else None
    reason = decision.reason if decision else (after.error or "") if after else ""
    return TenantOutcome(
        tenant_id=tenant.id,
        target=tenant.target.kind,
        deployed_to=deployed_to,
        metric=decision.metric if decision else METRIC,
        deployed=decision.baseline if decision else None,
        candidate=decision.value if decision else None,
        outcome=after.state.value if after else "none",
        reason=reason,
        evaluation=decision.evaluation if decision else "",
        rows=comparison.holdout_rows if comparison else None,
        low=interval[0] if interval else None,
        high=interval[1] if interval else None,
        note=(decision.note or "") if decision else "",
    )


DECISIONS = {"succeeded": "deployed", "rejected": "rejected", "failed": "failed"}


def _table(outcomes: Sequence[TenantOutcome]) -> Table:
    """Per tenant: the deployed model on the new rows -> the candidate on the same rows."""
    table = Table(
        title="bulk retrain after drift: R² of the deployed model on the new rows -> "
        "the candidate on the same rows"
    )
    table.add_column("tenant", no_wrap=True)
    table.add_column("judged on", no_wrap=True)
    table.add_column("deployed", justify="right", no_wrap=True)
    table.add_column("candidate", justify="right", no_wrap=True)
    table.add_column("change", justify="right", no_wrap=True)
    table.add_column("decision", no_wrap=True)
    colours = {"succeeded": "green", "rejected": "yellow", "failed": "red"}
    for o in outcomes:
        table.add_row(
            o.tenant_id,
            {"holdout": f"{o.rows} new rows", "reported": "reported"}.get(o.evaluation, "-"),
            _figure(o.deployed) if o.candidate is not None else "",
            _figure(o.candidate) if o.candidate is not None else "",
            "" if o.change is None else f"{o.change:+.3f}",
            f"[{colours.get(o.outcome, 'white')}]{DECISIONS.get(o.outcome, o.outcome)}[/]",
        )
    return table


def _figure(value: float | None) -> str:
    return "none" if value is None else f"{value:.3f}"


def _explain(console: Console, outcomes: Sequence[TenantOutcome], shown: int = 5) -> None:
    """What the table's columns mean, and the gate's reasons for its first rejections."""
    console.print(
        "judged on N new rows: both models scored the same N rows held out of the tenant's new "
        "data (the candidate never trained on them); reported: each model's own "
        "evaluation when it was trained, on different rows (a new web service has no staging "
        "copy to score a candidate on). A candidate is deployed when it is not worse than the "
        "deployed model by more than the gate allows.",
        highlight=False,
    )
    rejected = [o for o in outcomes if o.outcome == "rejected"]
    for o in rejected[:shown]:
        console.print(f"  {o.tenant_id} kept its model: {o.reason}", highlight=False)
    if len(rejected) > shown:
        console.print(f"  ... and {len(rejected) - shown} more rejected (see the report)")


async def run_demo(options: DemoOptions, state_dir: Path = DEFAULT_STATE_DIR) -> int:
    """Run the demo against the stack recorded in ``state_dir``; 0 when every run ended well."""
    console = Console()
    configure_logging(LogConfig(format="console", level="WARNING"))
    env = read_env_file(state_dir / "env")
    settings = WorkerSettings(_env_file=state_dir / "env")
    started = time.monotonic()
    async with aiohttp.ClientSession() as session:
        client = ApiClient(env["RETRAINQ_API_URL"], SecretStr(env["RETRAINQ_API_KEY"]), session)
        demo = Demo(client, session, settings, env["RETRAINQ_EMULATOR_URL"], console)
        # BES jobs that take a few seconds, as real ones take minutes: the bars show waiting.
        await demo.emulator_settings({"min_job_seconds": options.job_seconds})
        console.rule(f"1. onboarding {options.tenants} locations")
        first = await demo.follow(await demo.onboard(options), "first training")
        console.print(
            f"first training: {sum(r.state is RunState.SUCCEEDED for r in first)}"
            f"/{len(first)} deployed"
        )
        probe = await client.get_tenant(first[0].tenant_id)
        rows = [[r[c] for c in FEATURES] for r in _probe_rows()]
        before_scores = await demo.score(probe, rows)
        console.rule("2. drifted data for every location, then one bulk retrain")
        await demo.drift(options)
        accepted = await client.create_batch(BatchCreate(all=True, reason="data drift"))
        console.print(f"batch {accepted.batch_id}: {accepted.total} runs")
        await demo.follow_batch(accepted.batch_id)
        tenants = [await client.get_tenant(t) for t, _ in _tenant_ids(options)]
        latest = [(await client.tenant_runs(t.id, limit=1)).items for t in tenants]
        after_runs = {items[0].tenant_id: items[0] for items in latest if items}
        outcomes = [_outcome(t, after_runs.get(t.id)) for t in tenants]
        console.print(_table(outcomes))
        _explain(console, outcomes)
        console.rule(f"3. {probe.id}: predictions before and after, through its endpoint")
        after_scores = await demo.score(await client.get_tenant(probe.id), rows)
        for row, old, new in zip(rows, before_scores, after_scores, strict=True):
            console.print(
                f"hour {row[FEATURES.index('hr')]:>2}  temp {row[FEATURES.index('temp')]}"
                f"  before {float(old):8.1f}  after {float(new):8.1f}"
            )
    batch_runs = list(after_runs.values())
    counts = {s: sum(o.outcome == s for o in outcomes) for s in ("succeeded", "rejected", "failed")}
    summary = (
        f"{len(outcomes)} tenants; bulk retrain: {counts['succeeded']} deployed, "
        f"{counts['rejected']} rejected by the gate, {counts['failed']} failed; "
        f"demo took {time.monotonic() - started:.0f} s"
    )
    options.report.parent.mkdir(parents=True, exist_ok=True)
    options.report.write_text(render_report("retrainq demo", outcomes, batch_runs, summary))
    console.print(summary)
    console.print(f"report: {options.report.resolve()}")
    return 0 if counts["failed"] == 0 and all(o.outcome != "none" for o in outcomes) else 1


def _probe_rows() -> list[dict[str, str]]:
    rows = parse_csv(datagen.bike_rental_csv("probe", 24, seed=5))
    return [row for row in rows if row["hr"] in {"8", "12", "17", "22"}]
