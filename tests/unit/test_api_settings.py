"""API settings that do not fit together are refused (producer/api/settings.py)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from producer.api.settings import ApiSettings


def test_metrics_may_not_share_the_api_port() -> None:
    with pytest.raises(ValidationError, match="metrics_port"):
        ApiSettings(_env_file=None, port=8080, metrics_port=8080)


def test_defaults_serve_metrics_apart_and_check_onboarding() -> None:
    settings = ApiSettings(_env_file=None)
    assert (settings.metrics_port, settings.preflight) == (0, True)
    assert (settings.failed_auth_per_address, settings.failed_auth_window_seconds) == (30, 60)
    assert (settings.min_tenant_schedule_seconds, settings.min_fleet_schedule_seconds) == (60, 300)


@pytest.mark.parametrize("prefix", ["data/", "models/x/", "no-slash"])
def test_shared_prefixes_may_not_open_tenant_roots(prefix: str) -> None:
    with pytest.raises(ValidationError, match="shared data prefix"):
        ApiSettings(_env_file=None, shared_data_prefixes=[prefix])
