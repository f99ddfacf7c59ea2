"""The holdout gate's invariant over a whole bulk batch: for every run judged on a holdout,
both metrics recomputed from its recorded holdout and scored blobs are the recorded ones, the
gate rule recomputed gives the recorded decision, and a run is deployed exactly when its
candidate passed."""

from __future__ import annotations

import pytest

from emulator import datagen
from tests.integration.conftest_api import ADMIN
from tests.integration.fleet import Fleet, until
from tests.integration.holdout_checks import holdout_problems
from tests.integration.test_holdout_gate import (
    Api,
    api,
    data_at,
    finished,
    onboard,
    shuffled,
    start_workers,
)
from worker.blobs import training_data_path
from worker.evaluate import Gate
from worker.schemas import RunState

__all__ = ["api"]
pytestmark = pytest.mark.timeout(420)
TENANTS = 12


def gate_of(index: int) -> dict[str, object]:
    """Gates of every flavour: plain, a threshold, an absolute allowance, a bootstrap."""
    gate: dict[str, object] = {"holdout": {"label": "cnt", "min_rows": 20}}
    if index % 4 == 1:
        gate["threshold"] = 0.3
    if index % 4 == 2:
        gate["max_regression_absolute"] = 0.02
    if index % 4 == 3:
        gate["confidence"] = 0.9
    return gate


def new_data(fleet: Fleet, tenant_id: str, index: int) -> str:
    """Drifted data, shuffled labels, or a fresh sample of the same pattern."""
    if index % 3 == 0:
        return datagen.bike_rental_csv(tenant_id, 300, seed=3, drift=True)
    if index % 3 == 1:
        return shuffled(fleet.csv(tenant_id, 300))
    return datagen.bike_rental_csv(tenant_id, 300, seed=8)


async def test_every_holdout_decision_of_a_bulk_batch_recomputes_from_its_blobs(
    fleet: Fleet, api: Api
) -> None:
    """12 tenants onboarded (no champion yet), then a bulk batch on new data of three kinds:
    0 exceptions to the invariant, and both outcomes occur."""
    start_workers(fleet, 2)
    ids = [f"bulk-{i:02d}" for i in range(TENANTS)]
    firsts = [await onboard(fleet, api, tenant_id, gate_of(i)) for i, tenant_id in enumerate(ids)]
    for run_id in firsts:
        assert (await finished(api, run_id, within=240))["state"] == "succeeded"
    for index, tenant_id in enumerate(ids):
        path = training_data_path(tenant_id, "v2")
        await fleet.blobs.upload(path, new_data(fleet, tenant_id, index).encode())
        await fleet.store.update_tenant(tenant_id, data_at(path))
    answer = await api.post("/v1/batches", json={"tenant_ids": ids}, headers=ADMIN)
    assert answer.status == 202, await answer.text()
    batch_id = (await answer.json())["batch_id"]

    async def batch_ended() -> bool:
        body = await (await api.get(f"/v1/batches/{batch_id}", headers=ADMIN)).json()
        return bool(body["state"] != "running")

    await until(batch_ended, within=300, every=0.5)
    run_ids = await fleet.store.batch_run_ids(batch_id)
    runs = await fleet.store.get_runs([*firsts, *run_ids])
    problems: list[str] = []
    outcomes = set()
    for run in runs:
        assert run.evaluation == "holdout", (run.id, run.evaluation_note, run.error)
        tenant = await fleet.store.get_tenant(run.tenant_id)
        assert tenant is not None
        history = await fleet.store.model_history(run.tenant_id)
        deployed = {model.run_id for model in history}
        problems += await holdout_problems(fleet, run, tenant.gate or Gate(), deployed)
        outcomes.add(run.state)
    assert not problems, "\n".join(problems)
    assert {RunState.SUCCEEDED, RunState.REJECTED} <= outcomes
