"""Which v2 serving pool a new tenant joins, and what a change of a pool tenant may not do
(``producer/api/pools.py``); the pools' settings."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from producer.api.pools import joined_pool, kept_pool, pool_capacity
from producer.api.problems import Problem
from tests.azureml_v2 import v2_settings
from worker.schemas import ClassicTarget, NewServiceTarget, Tenant, V2PoolTarget
from worker.settings import RetrainqSettings


def settings(**pools: dict[str, Any]) -> RetrainqSettings:
    """Settings with v2 services ``v2`` and ``v2b`` and the given pools."""
    services = {
        name: {"backend": "azureml_v2", "azureml_v2": v2_settings("sub", "rg", "store")}
        for name in ("v2", "v2b")
    }
    services["default"] = {}
    return RetrainqSettings(_env_file=None, training_services=services, v2_pools=pools)


def pool(service: str = "v2", capacity: int = 10) -> dict[str, Any]:
    """A pool's settings."""
    return {"service": service, "endpoint": "rq-pool", "deployment": "scorer", "capacity": capacity}


def tenant(pool_name: str | None = None, service: str = "default") -> Tenant:
    """A new pool tenant."""
    return Tenant(id="t1", target=V2PoolTarget(pool=pool_name), training_service=service)


def refused(call: Any) -> Problem:
    """The problem ``call()`` raises."""
    with pytest.raises(Problem) as caught:
        call()
    return caught.value


def test_a_tenant_naming_no_pool_joins_the_one_with_most_room_and_trains_on_its_service() -> None:
    """Room is capacity minus tenants; the pool's service becomes the tenant's."""
    config = settings(a=pool(capacity=5), b=pool("v2b", capacity=20))
    joined = joined_pool(config, tenant(), {"a": 1, "b": 3}, named_service=False)
    assert (joined.target, joined.training_service) == (V2PoolTarget(pool="b"), "v2b")
    assert pool_capacity(config, joined) == 20


def test_a_named_training_service_limits_the_pools_to_its_own() -> None:
    """With ``training_service`` given, only that service's pools are candidates."""
    config = settings(a=pool(capacity=5), b=pool("v2b", capacity=20))
    joined = joined_pool(config, tenant(service="v2"), {}, named_service=True)
    assert joined.target == V2PoolTarget(pool="a")
    problem = refused(
        lambda: joined_pool(config, tenant("b", service="v2"), {}, named_service=True)
    )
    assert (problem.status, problem.extra["code"]) == (422, "unknown_pool")


def test_unknown_pools_and_full_pools_are_problems() -> None:
    """No pools, an unknown pool: 422; a full named pool or every pool full: 409."""
    assert refused(lambda: joined_pool(settings(), tenant(), {}, named_service=False)).status == 422
    config = settings(a=pool(capacity=2))
    problem = refused(lambda: joined_pool(config, tenant("zz"), {}, named_service=False))
    assert (problem.status, problem.extra["known"]) == (422, ["a"])
    problem = refused(lambda: joined_pool(config, tenant("a"), {"a": 2}, named_service=False))
    assert (problem.status, problem.extra["code"]) == (409, "pool_full")
    problem = refused(lambda: joined_pool(config, tenant(), {"a": 2}, named_service=False))
    assert (problem.status, problem.extra["code"]) == (409, "pools_full")


def test_other_targets_pass_unchanged() -> None:
    """A classic tenant joins no pool."""
    classic = Tenant(id="t2", target=ClassicTarget(web_service_id="ws", resource_name="r"))
    assert joined_pool(settings(), classic, {}, named_service=False) is classic
    assert pool_capacity(settings(), classic) is None


def test_a_pool_tenant_keeps_its_pool_through_changes() -> None:
    """A v2_pool target without a pool (or with its own) keeps the tenant's; another pool, or
    another kind either way, is refused; so is a training service its pool does not serve."""
    config = settings(a=pool(), b=pool())
    current = tenant("a", service="v2")
    kept = kept_pool(config, current, {"target": V2PoolTarget()})
    assert kept["target"] == V2PoolTarget(pool="a")
    for change in (
        {"target": V2PoolTarget(pool="b")},
        {"target": NewServiceTarget(template_service="tpl")},
        {"training_service": "v2b"},
    ):
        assert refused(lambda c=change: kept_pool(config, current, c)).extra["code"] == "pool_fixed"
    classic = Tenant(id="t2", target=ClassicTarget(web_service_id="ws", resource_name="r"))
    problem = refused(lambda: kept_pool(config, classic, {"target": V2PoolTarget(pool="a")}))
    assert problem.status == 422


def test_pools_must_serve_from_a_v2_service_and_have_plain_names() -> None:
    """A pool of a classic or unknown service, or a name with other characters, is refused."""
    with pytest.raises(ValidationError, match="not an azureml_v2 training service"):
        settings(a=pool("default"))
    with pytest.raises(ValidationError, match="no pool name"):
        settings(**{"a b": pool()})
