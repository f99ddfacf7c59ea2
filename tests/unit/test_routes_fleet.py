"""The ``/v1/fleet`` body built from the read models (``producer/api/routes_fleet.py``)."""

from __future__ import annotations

from datetime import UTC, datetime

from producer.api.routes_fleet import overview
from worker.schemas import Lane
from worker.views import (
    HOUR_MS,
    MAX_SCANNED_TENANTS,
    Backlog,
    EndpointLoad,
    FleetCounts,
    Load,
    ServiceLoad,
)


def test_the_fleet_body_shows_the_views_numbers_unchanged() -> None:
    """Tenant counts, each service's load, the backlog and the runs of the window are the
    views' own numbers; the hours are the window's, oldest first."""
    now = 5 * HOUR_MS + 42
    counts = FleetCounts(
        total=3,
        scanned=3,
        by_kind={"classic": 3},
        by_model_state={"retraining": 1, "no_model": 2},
        recent=(("failed", 5 * HOUR_MS), ("queued", 4 * HOUR_MS + 1)),
    )
    load = Load(
        services=(
            ServiceLoad(
                name="svc",
                in_use=2,
                cap=4,
                endpoints=(EndpointLoad(0, 2, 4),),
                waiting={Lane.INTERACTIVE: 1, Lane.BULK: 3},
                throttle_seconds=1.5,
            ),
        ),
        backlog=Backlog(ready=6, deferred=1, waiting_slot=4, parked=2),
    )
    body = overview(counts, load, now, hours=2).model_dump(mode="json")
    assert body["generated_at"] == datetime.fromtimestamp(now / 1000, UTC).isoformat().replace(
        "+00:00", "Z"
    )
    assert body["tenants"] == {
        "total": 3,
        "scanned": 3,
        "complete": True,
        "by_kind": {"classic": 3},
        "by_model_state": {"retraining": 1, "no_model": 2},
    }
    assert body["services"] == [
        {
            "name": "svc",
            "slots_in_use": 2,
            "max_running": 4,
            "waiting_interactive": 1,
            "waiting_bulk": 3,
            "throttled": True,
            "throttle_seconds_left": 1.5,
            "endpoints": [{"index": 0, "slots_in_use": 2, "max_concurrent_jobs": 4}],
        }
    ]
    assert body["backlog"] == {"ready": 6, "deferred": 1, "waiting_slot": 4}
    assert body["hours"] == 2
    assert [hour["counts"] for hour in body["runs_by_hour"]] == [{"queued": 1}, {"failed": 1}]
    assert body["runs_by_state"] == {"failed": 1, "queued": 1}


def test_a_fleet_larger_than_the_scan_says_its_counts_are_lower_bounds() -> None:
    """Past ``MAX_SCANNED_TENANTS`` the body says the scan was not complete: the total is
    the index's, the counts those of the tenants scanned."""
    counts = FleetCounts(
        total=MAX_SCANNED_TENANTS + 5,
        scanned=MAX_SCANNED_TENANTS,
        by_kind={"classic": MAX_SCANNED_TENANTS},
        by_model_state={"up_to_date": MAX_SCANNED_TENANTS},
        recent=(),
    )
    load = Load(services=(), backlog=Backlog(ready=0, deferred=0, waiting_slot=0, parked=0))
    tenants = overview(counts, load, HOUR_MS, hours=1).tenants
    assert (tenants.total, tenants.scanned, tenants.complete) == (
        MAX_SCANNED_TENANTS + 5,
        MAX_SCANNED_TENANTS,
        False,
    )
    assert tenants.by_model_state == {"up_to_date": MAX_SCANNED_TENANTS}
