"""A tenant's retention: its own fields over the global settings."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from worker.archive_policy import Policy, policy_for
from worker.schemas import Retention
from worker.settings import ArchiveConfig


def test_without_overrides_a_tenant_gets_the_global_retention() -> None:
    """No retention on the tenant (or an empty one): the settings' values."""
    config = ArchiveConfig(keep_runs=7, keep_days=3, keep_deployed=2)
    expected = Policy(keep_runs=7, keep_days=3, keep_deployed=2)
    assert policy_for(config, None) == expected
    assert policy_for(config, Retention()) == expected


def test_each_field_a_tenant_sets_replaces_only_that_setting() -> None:
    """keep_runs set on the tenant, keep_days and keep_deployed from the settings; 0 days is
    a value, not a gap."""
    config = ArchiveConfig(keep_runs=50, keep_days=30, keep_deployed=5)
    assert policy_for(config, Retention(keep_runs=3)) == Policy(3, 30, 5)
    assert policy_for(config, Retention(keep_days=0, keep_deployed=9)) == Policy(50, 0, 9)


@pytest.mark.parametrize(
    "fields",
    [{"keep_runs": 0}, {"keep_days": -1}, {"keep_deployed": 0}, {"keep_runs": 10**6}, {"x": 1}],
)
def test_retention_out_of_range_or_unknown_is_refused(fields: dict[str, int]) -> None:
    """The bounds of the global settings hold for a tenant's own values too."""
    with pytest.raises(ValidationError):
        Retention.model_validate(fields)
