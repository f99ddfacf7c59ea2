"""The PrometheusRule example: Redis memory alerts at 80 % (and when full), on the workers'
gauge, valid against its schema, in base and prod and not in dev."""

from __future__ import annotations

import copy
import re

from prometheus_client import REGISTRY

from tests.deploy.support import Doc, find, one
from tests.deploy.test_kustomize import custom_resource_errors
from worker import metrics  # noqa: F401  # registers the gauges the rules name

GAUGE = "retrainq_redis_memory_used_ratio"


def rules(docs: list[Doc]) -> dict[str, Doc]:
    """The alerting rules of the rendered PrometheusRule, by alert name."""
    rule = one(docs, "PrometheusRule", "retrainq-redis")
    return {r["alert"]: r for group in rule["spec"]["groups"] for r in group["rules"]}


def test_the_rule_warns_at_80_percent_of_maxmemory_and_pages_when_full(
    rendered: dict[str, list[Doc]],
) -> None:
    """A warning above 0.8 of the gauge for 10 minutes, a critical one at 0.98; both on the
    max over the workers of a metric the workers really export."""
    for overlay in ("base", "overlays/prod"):
        found = rules(rendered[overlay])
        high, full = found["RetrainqRedisMemoryHigh"], found["RetrainqRedisFull"]
        assert re.fullmatch(rf"max\({GAUGE}\) > 0\.8", high["expr"])
        assert (high["for"], high["labels"]["severity"]) == ("10m", "warning")
        assert re.fullmatch(rf"max\({GAUGE}\) >= 0\.98", full["expr"])
        assert full["labels"]["severity"] == "critical"
    assert REGISTRY.get_sample_value(GAUGE) is not None, "the gauge is exported"
    assert find(rendered["overlays/dev"], "PrometheusRule") == [], "dev has no operator"


def test_the_rule_schema_has_teeth(rendered: dict[str, list[Doc]]) -> None:
    """A typo'd rule field, a rule without expr and a bad duration fail validation."""
    rule = one(rendered["base"], "PrometheusRule", "retrainq-redis")
    assert custom_resource_errors(rule) == []
    for breakage in ("fro", "expr", "for"):
        broken = copy.deepcopy(rule)
        first = broken["spec"]["groups"][0]["rules"][0]
        if breakage == "fro":
            first["fro"] = "10m"
        elif breakage == "expr":
            del first["expr"]
        else:
            first["for"] = "ten minutes"
        assert custom_resource_errors(broken), breakage
