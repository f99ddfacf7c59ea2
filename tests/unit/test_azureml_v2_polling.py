"""Pure parts of v2 polling within ARM's budget: the budget mirror, poll windows, listings."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from tests.unit.test_azureml_v2 import V2, a_run
from worker.azureml.bes import JobState
from worker.azureml.errors import ThrottledError, TransientError
from worker.azureml_v2.budget import ArmBudget, operation_of, remaining_of
from worker.azureml_v2.jobs import JobInfo, parse_page
from worker.azureml_v2.listings import Listings, poll_group, poll_tag
from worker.azureml_v2.training import command_job_body
from worker.settings import ArmBudgetConfig, AzureMLV2Config, BucketBudget


class Clock:
    """A clock the test moves; ``sleep`` moves it too."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def budget(
    clock: Clock, capacity: int = 10, per_second: float = 2, reserve: int = 2, wait: float = 1
) -> ArmBudget:
    """A budget whose reads bucket is small enough to watch."""
    reads = BucketBudget(capacity=capacity, per_second=per_second, reserve=reserve)
    config = ArmBudgetConfig(reads=reads, max_wait_seconds=wait)
    return ArmBudget(config, clock=clock, sleep=clock.sleep)


@pytest.mark.parametrize(
    ("method", "operation"),
    [("GET", "reads"), ("PUT", "writes"), ("POST", "writes"), ("DELETE", "deletes")],
)
def test_methods_spend_from_their_operation_type(method: str, operation: str) -> None:
    """GET reads, DELETE deletes, every other method (actions included) writes."""
    assert operation_of(method) == operation


def test_remaining_counts_are_read_case_insensitively_and_bad_ones_ignored() -> None:
    """The header of the operation's type, whatever its case; junk gives no count."""
    headers = {"X-Ms-Ratelimit-Remaining-Subscription-Reads": "17"}
    assert remaining_of(headers, "reads") == 17
    assert remaining_of(headers, "writes") is None
    assert remaining_of({"x-ms-ratelimit-remaining-subscription-reads": "n/a"}, "reads") is None
    assert remaining_of({"x-ms-ratelimit-remaining-subscription-reads": "-1"}, "reads") is None


async def test_calls_go_out_at_once_while_the_bucket_is_above_its_reserve() -> None:
    """With no answer seen the bucket is taken as full: capacity minus reserve calls leave
    without waiting."""
    clock = Clock()
    spend = budget(clock)
    for _ in range(7):
        await spend.acquire("GET", "u")
    assert clock.slept == []
    assert spend.bucket("GET").estimate(clock()) == pytest.approx(3)


async def test_a_call_near_the_reserve_waits_for_the_refill_then_one_longer_is_refused() -> None:
    """At the reserve a call waits for one token's refill (0.5 s at 2/s); a wait above
    max_wait fails at once with ThrottledError carrying the wait, and spends nothing."""
    clock = Clock()
    spend = budget(clock, wait=0.6)
    spend.answered("GET", {"x-ms-ratelimit-remaining-subscription-reads": "2"})
    await spend.acquire("GET", "u")
    assert clock.slept == [pytest.approx(0.5)]
    spend.answered("GET", {"x-ms-ratelimit-remaining-subscription-reads": "0"})
    with pytest.raises(ThrottledError) as refused:
        await spend.acquire("GET", "u")
    assert refused.value.retry_after == pytest.approx(1.5)
    assert refused.value.code == "ArmBudgetSpent"
    assert isinstance(refused.value, TransientError)
    assert spend.bucket("GET").tokens == 0


async def test_a_429_blocks_its_operation_type_until_retry_after_has_passed() -> None:
    """After a 429 with Retry-After 30 no read is sent for 30 s (writes still are); after
    it the reads bucket refills from empty."""
    clock = Clock()
    spend = budget(clock, reserve=0)
    spend.refused("GET", "30")
    with pytest.raises(ThrottledError) as refused:
        await spend.acquire("GET", "u")
    assert refused.value.retry_after == pytest.approx(30)
    await spend.acquire("PUT", "u")
    clock.now += 30
    await spend.acquire("GET", "u")
    assert clock.slept == []


async def test_a_bucket_that_never_refills_refuses_once_spent_down_to_its_reserve() -> None:
    """per_second 0 (a test budget): exactly capacity - reserve calls, then refusals."""
    clock = Clock()
    spend = budget(clock, capacity=5, per_second=0, reserve=1)
    for _ in range(4):
        await spend.acquire("GET", "u")
    with pytest.raises(ThrottledError):
        await spend.acquire("GET", "u")


async def test_callers_in_line_behind_a_wait_longer_than_the_limit_fail_fast() -> None:
    """The first caller waits for the refill; one queued behind it longer than max_wait fails
    with ThrottledError without waiting its turn (and spends nothing)."""
    released = asyncio.Event()
    clock = Clock()

    async def slow_sleep(seconds: float) -> None:
        clock.slept.append(seconds)
        await released.wait()

    reads = BucketBudget(capacity=10, per_second=2, reserve=0)
    config = ArmBudgetConfig(reads=reads, max_wait_seconds=0.05)
    spend = ArmBudget(config, clock=clock, sleep=slow_sleep)
    spend.answered("GET", {"x-ms-ratelimit-remaining-subscription-reads": "0.95"})
    first = asyncio.create_task(spend.acquire("GET", "u"))
    await asyncio.sleep(0)
    with pytest.raises(ThrottledError) as queued:
        await spend.acquire("GET", "u")
    assert queued.value.code == "ArmBudgetSpent"
    released.set()
    await first
    assert clock.slept == [pytest.approx(0.025)]


def test_a_runs_poll_window_comes_from_when_it_began_submitting() -> None:
    """Floored to the window length, from the submitting phase (so every submit of the run
    names one window), else from the run's creation."""
    began = datetime(2026, 12, 6, 21, 37, 12, tzinfo=UTC)
    run = a_run(phases={"submitting": began}, created_at=began - timedelta(hours=3))
    assert poll_group(run, 10) == "202612062130"
    assert poll_group(run, 60) == "202612062100"
    assert poll_group(run, 1440) == "202612060000"
    assert poll_tag(run, 10) == "retrainq-poll-202612062130"
    waiting = a_run(created_at=began)
    assert poll_group(waiting, 15) == "202612062130"


def test_the_job_body_carries_its_poll_tag() -> None:
    """The tag key names the window (what the listing filters by); the body stays stable."""
    began = datetime(2026, 12, 6, 21, 37, tzinfo=UTC)
    run = a_run(phases={"submitting": began})
    config = AzureMLV2Config.model_validate(V2)
    tags = command_job_body(run, config)["properties"]["tags"]
    assert tags["retrainq-poll-202612062130"] == "202612062130"
    assert command_job_body(run, config) == command_job_body(run, config)


def test_a_list_page_gives_its_jobs_and_next_link_and_skips_odd_items() -> None:
    """Items that are no job body are skipped rather than failing the page."""
    page = {
        "value": [
            {"name": "a", "properties": {"status": "Running"}},
            {"no": "name"},
            {"name": "b", "properties": {"status": "Completed"}},
        ],
        "nextLink": "http://arm/jobs?$skip=3",
    }
    jobs, link = parse_page(page)
    assert [(j.name, j.state) for j in jobs] == [
        ("a", JobState.RUNNING),
        ("b", JobState.FINISHED),
    ]
    assert link == "http://arm/jobs?$skip=3"
    assert parse_page({"value": []}) == ([], None)


async def test_reads_arriving_together_share_one_listing_while_it_is_fresh() -> None:
    """Twenty concurrent reads of one key fetch once; a read within fresh_seconds reuses it;
    one after fetches again."""
    clock = Clock()
    listings = Listings(5.0, clock=clock)
    gate = asyncio.Event()

    async def fetch() -> list[JobInfo]:
        await gate.wait()
        return [JobInfo("j1", "Running", JobState.RUNNING)]

    readers = [asyncio.create_task(listings.get("k", fetch)) for _ in range(20)]
    await asyncio.sleep(0)
    gate.set()
    results = await asyncio.gather(*readers)
    assert listings.fetches == 1
    assert results[0] is not None
    assert all(r is results[0] for r in results)
    clock.now += 4
    assert await listings.get("k", fetch) is results[0]
    clock.now += 2
    assert await listings.get("k", fetch) is not results[0]
    assert listings.fetches == 2


async def test_a_failed_listing_fails_every_read_that_waited_for_it() -> None:
    """One fetch, its TransientError raised in each of the reads (none turns into a GET of
    its own); nothing is kept, so the next read fetches again."""
    listings = Listings(5.0)
    gate = asyncio.Event()

    async def fetch() -> list[JobInfo]:
        await gate.wait()
        raise TransientError("down", status=503)

    readers = [asyncio.create_task(listings.get("k", fetch)) for _ in range(3)]
    await asyncio.sleep(0)
    gate.set()
    results = await asyncio.gather(*readers, return_exceptions=True)
    assert [type(r) for r in results] == [TransientError] * 3
    assert {getattr(r, "status", None) for r in results} == {503}
    assert (listings.fetches, listings.entries) == (1, {})
    gate.clear()
    gate.set()
    with pytest.raises(TransientError):
        await listings.get("k", fetch)
    assert listings.fetches == 2


async def test_a_job_missing_from_a_listing_older_than_its_training_is_still_running() -> None:
    """Created after the listing: taken as running until the next one. Missing from a
    listing fetched after the run began training: unknown (the caller GETs it)."""
    wall = datetime(2026, 12, 6, 21, 0, tzinfo=UTC)
    listings = Listings(5.0, wall=lambda: wall)

    async def fetch() -> list[JobInfo]:
        return []

    listing = await listings.get("k", fetch)
    assert listing is not None
    young = a_run(phases={"training": wall + timedelta(seconds=1)})
    found = listing.state_of(young, "job")
    assert found is not None
    assert found.state is JobState.RUNNING
    old = a_run(phases={"training": wall - timedelta(seconds=1)})
    assert listing.state_of(old, "job") is None
