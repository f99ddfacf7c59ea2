"""The fleet view's model state of a tenant (a pure function of producer/api/routes_fleet.py)."""

from __future__ import annotations

import pytest

from producer.api.routes_fleet import model_state


@pytest.mark.parametrize(
    ("deployed", "latest", "expected"),
    [
        (False, None, "no_model"),
        (False, "failed", "no_model"),
        (False, "training", "retraining"),
        (True, "queued", "retraining"),
        (True, None, "up_to_date"),
        (True, "succeeded", "up_to_date"),
        (True, "rejected", "kept_previous"),
        (True, "failed", "kept_previous"),
        (True, "cancelled", "kept_previous"),
    ],
)
def test_model_state_follows_the_deployed_model_and_the_latest_run(
    deployed: bool, latest: str | None, expected: str
) -> None:
    """A running latest run means retraining; otherwise the deployed model and how the latest
    run ended decide."""
    assert model_state(deployed, latest) == expected
