"""``GET /v1/tenants`` on the real app and Redis: filters by model state, kind and id prefix,
sorts by creation, id, state and gate metric, and pages with a cursor that neither skips nor
repeats tenants onboarded between two pages."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis

from tests.integration.conftest_api import ADMIN, ApiTestClient, onboard
from tests.runs import put_in_state
from worker.run.model import RunState
from worker.schemas import DeployedModel, utcnow
from worker.store import Store


async def listing(api: ApiTestClient, query: str) -> dict[str, Any]:
    """The listing's body for ``query`` (asserting a 200)."""
    response = await api.get(f"/v1/tenants?{query}", headers=ADMIN)
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    return body


def ids(page: dict[str, Any]) -> list[str]:
    """The tenant ids of a page, in order."""
    return [item["id"] for item in page["items"]]


async def deploy(store: Store, tenant_id: str, seq: int, value: float | None) -> None:
    """Record a deployed model of ``tenant_id`` with this gate metric value (or none)."""
    metrics = {} if value is None else {"Coefficient of Determination": value}
    model = DeployedModel(
        run_id=f"run-{tenant_id}-{seq}",
        seq=seq,
        model_path=f"models/{tenant_id}/{seq}.ilearner",
        metrics=metrics,
        deployed_at=utcnow(),
    )
    assert await store.record_deployment(tenant_id, model)


async def fleet(api: ApiTestClient, redis: aioredis.Redis) -> None:
    """Six tenants: three serving (metrics .85, .93, none), one of them with a failed latest
    run, one retraining, two with no model, one of kind new."""
    store = Store(redis)
    for tenant_id in ("shop-b", "shop-a", "shop-c", "depot-x", "depot-y"):
        await onboard(api, tenant_id, data_path=f"data/{tenant_id}/a.csv", train=False)
    await onboard(api, "hub-n", target={"kind": "new", "template_service": "tmpl"}, train=False)
    await deploy(store, "shop-a", 1, 0.93)
    await deploy(store, "shop-b", 1, 0.85)
    await deploy(store, "shop-c", 1, None)
    for tenant_id, state in (("shop-b", RunState.FAILED), ("depot-x", RunState.TRAINING)):
        answer = await api.post(f"/v1/tenants/{tenant_id}/retrains", headers=ADMIN)
        assert answer.status == 202, await answer.text()
        run = await store.get_run((await answer.json())["run"]["id"])
        assert run is not None
        if state is RunState.TRAINING:
            for step in (RunState.WAITING_SLOT, RunState.SUBMITTING):
                run = await put_in_state(store, run, step)
        await put_in_state(store, run, state)


async def test_tenants_carry_their_model_state_and_filter_by_state_kind_and_prefix(
    api: ApiTestClient, redis: aioredis.Redis
) -> None:
    """Each item says its model state and latest run's state; state, kind and prefix filter,
    and ``matched`` counts what passed while ``total`` stays the index's size."""
    await fleet(api, redis)
    everything = await listing(api, "")
    assert ids(everything) == ["shop-b", "shop-a", "shop-c", "depot-x", "depot-y", "hub-n"]
    states = {i["id"]: (i["model_state"], i["latest_run_state"]) for i in everything["items"]}
    assert states == {
        "shop-a": ("up_to_date", None),
        "shop-b": ("kept_previous", "failed"),
        "shop-c": ("up_to_date", None),
        "depot-x": ("retraining", "training"),
        "depot-y": ("no_model", None),
        "hub-n": ("no_model", None),
    }
    assert (everything["total"], everything["matched"], everything["scanned"]) == (6, 6, 6)
    assert ids(await listing(api, "state=no_model")) == ["depot-y", "hub-n"]
    both = await listing(api, "state=retraining,kept_previous")
    assert ids(both) == ["shop-b", "depot-x"]
    assert (both["total"], both["matched"]) == (6, 2)
    assert ids(await listing(api, "prefix=shop-")) == ["shop-b", "shop-a", "shop-c"]
    assert ids(await listing(api, "prefix=depot&state=no_model")) == ["depot-y"]
    assert ids(await listing(api, "kind=new&state=no_model")) == ["hub-n"]
    assert ids(await listing(api, "prefix=nobody")) == []


async def test_tenants_sort_by_id_state_and_metric_both_ways(
    api: ApiTestClient, redis: aioredis.Redis
) -> None:
    """id and state sort by name (ties by id); metric by the deployed gate metric, best first
    with ``-metric``, and tenants without a value last either way."""
    await fleet(api, redis)
    assert ids(await listing(api, "sort=id")) == [
        "depot-x", "depot-y", "hub-n", "shop-a", "shop-b", "shop-c"
    ]  # fmt: skip
    assert ids(await listing(api, "sort=-id"))[:2] == ["shop-c", "shop-b"]
    assert ids(await listing(api, "sort=-created"))[:2] == ["hub-n", "depot-y"]
    assert ids(await listing(api, "sort=state")) == [
        "shop-b", "depot-y", "hub-n", "depot-x", "shop-a", "shop-c"
    ]  # fmt: skip
    best = await listing(api, "sort=-metric")
    assert ids(best)[:2] == ["shop-a", "shop-b"]
    assert best["sort"] == "-metric"
    worst = await listing(api, "sort=metric&prefix=shop")
    assert ids(worst) == ["shop-b", "shop-a", "shop-c"]


async def test_a_cursor_pages_on_without_skipping_or_repeating(
    api: ApiTestClient, redis: aioredis.Redis
) -> None:
    """Pages of two by id: a tenant onboarded before the cursor's position between two pages
    does not shift the next page; the last page has no cursor; offsets still work."""
    await fleet(api, redis)
    first = await listing(api, "sort=id&limit=2")
    assert ids(first) == ["depot-x", "depot-y"]
    assert first["next_cursor"] is not None
    await onboard(api, "aaa-late", train=False)  # sorts before the cursor
    second = await listing(api, f"sort=id&limit=2&cursor={first['next_cursor']}")
    assert ids(second) == ["hub-n", "shop-a"]
    third = await listing(api, f"sort=id&limit=2&cursor={second['next_cursor']}")
    assert ids(third) == ["shop-b", "shop-c"]
    assert third["next_cursor"] is None
    assert third["next_offset"] is None
    by_offset = await listing(api, "limit=4&offset=4")
    assert ids(by_offset) == ["depot-y", "hub-n", "aaa-late"]
    assert by_offset["next_offset"] is None
    metric = await listing(api, "sort=-metric&limit=1")
    after = await listing(api, f"sort=-metric&limit=5&cursor={metric['next_cursor']}")
    assert ids(metric) + ids(after)[:2] == ["shop-a", "shop-b", "shop-c"]


async def test_bad_listing_parameters_are_422_problems(api: ApiTestClient) -> None:
    """Unknown states and sorts, a malformed prefix, a forged cursor or one of another sort
    answer 422 problem+json naming the parameter."""
    await onboard(api, "shop-a", train=False)
    cursor = (await listing(api, "sort=id&limit=1&offset=0"))["next_cursor"]
    assert cursor is None  # one tenant: no next page
    await onboard(api, "shop-b", train=False)
    cursor = (await listing(api, "sort=id&limit=1"))["next_cursor"]
    cases = {
        "state=sleeping": "state",
        "sort=size": "sort",
        "prefix=Shop%20A": "prefix",
        "cursor=not-a-cursor": "cursor",
        "cursor=WyJpZCIsMV0": "cursor",  # ["id",1]: a key of the wrong type
        f"sort=metric&cursor={cursor}": "cursor",
    }
    for query, parameter in cases.items():
        response = await api.get(f"/v1/tenants?{query}", headers=ADMIN)
        assert response.status == 422, query
        assert response.content_type == "application/problem+json"
        assert (await response.json())["detail"].startswith(f"{parameter}:"), query


async def test_the_metric_is_each_tenants_own_gate_metric(
    api: ApiTestClient, redis: aioredis.Redis
) -> None:
    """A tenant gated on another metric sorts by that metric's deployed value, not by the
    default one its model also reports."""
    store = Store(redis)
    gate = {"metric": "Mean Absolute Error", "direction": "lower_is_better"}
    await onboard(api, "mae-a", train=False, gate=gate)
    await onboard(api, "r2-a", train=False)
    await deploy(store, "r2-a", 1, 0.5)
    model = DeployedModel(
        run_id="run-mae-a-1",
        seq=1,
        model_path="models/mae-a/1.ilearner",
        metrics={"Mean Absolute Error": 7.5, "Coefficient of Determination": 0.1},
        deployed_at=utcnow(),
    )
    assert await store.record_deployment("mae-a", model)
    assert ids(await listing(api, "sort=-metric")) == ["mae-a", "r2-a"]
    assert ids(await listing(api, "sort=metric")) == ["r2-a", "mae-a"]
