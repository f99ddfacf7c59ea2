"""deploy/redis.conf's maxmemory is the one docs/OPERATIONS.md derives from the measured
bytes per tenant (docs/BENCHMARKS.md, M1) for the documented fleet."""

from __future__ import annotations

from tests.deploy.support import REPO
from tests.deploy.test_redis_conf import directives

FLEET = 10_000
BYTES_PER_TENANT = 130_000  # M1: the top of the steady-state saw-tooth, default retention
INDEX_BYTES_PER_YEAR = 0.1e9  # about 28 B per archived run, 3.65 M runs a year
UNITS = {"kb": 1024, "mb": 1024**2, "gb": 1024**3}


def maxmemory_bytes() -> int:
    """``maxmemory`` of deploy/redis.conf in bytes."""
    (value,) = directives()["maxmemory"]
    number, unit = value[:-2], value[-2:].lower()
    return int(number) * UNITS[unit]


def test_maxmemory_holds_the_fleet_and_two_years_of_index_below_the_alert() -> None:
    """The fleet's records and two years of index stay under the 80 % warning."""
    needed = FLEET * BYTES_PER_TENANT + 2 * INDEX_BYTES_PER_YEAR
    assert needed < 0.8 * maxmemory_bytes()
    assert 0.5 * maxmemory_bytes() < FLEET * BYTES_PER_TENANT, "not sized far above the need"


def test_the_docs_state_the_figures_the_file_is_sized_from() -> None:
    """OPERATIONS and BENCHMARKS give the per-tenant figure and the setting."""
    operations = (REPO / "docs" / "OPERATIONS.md").read_text()
    benchmarks = (REPO / "docs" / "BENCHMARKS.md").read_text()
    assert "a tenant costs 130 KB" in operations
    assert "`maxmemory 2gb`" in operations
    assert "**130 KB**" in benchmarks
    assert "bench/redis_sizing.py --tenants 1000 --nights 70" in benchmarks
    assert directives()["maxmemory"] == ["2gb"]
