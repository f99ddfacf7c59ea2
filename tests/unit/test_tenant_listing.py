"""The tenant listing's pure parts (``producer/api/tenant_listing.py``) and the activity
buckets of the fleet chart (``worker.views.activity_window``)."""

from __future__ import annotations

import pytest

from producer.api.tenant_listing import (
    ListingError,
    TenantQuery,
    decode_cursor,
    encode_cursor,
    index_page,
    parse_query,
    select,
)
from worker.views import HOUR_MS, TenantRow, activity_window

MINUTE_MS = 60_000


def row(tenant_id: str, created: float, metric: float | None = None) -> TenantRow:
    """A serving tenant (or one without a model when ``metric`` is None) with no runs."""
    seq = None if metric is None else 1
    return TenantRow(tenant_id, created, "classic", seq, metric, None)


ROWS = [row("b", 1.0, 0.85), row("a", 2.0, 0.93), row("c", 3.0), row("d", 4.0, 0.85)]


def test_a_cursor_round_trips_and_names_its_sort() -> None:
    """The key comes back as it went in; another sort's cursor is refused."""
    cursor = encode_cursor("-metric", (True, 0.93, "a"))
    assert decode_cursor(cursor, "-metric") == (True, 0.93, "a")
    with pytest.raises(ListingError, match="made for sort=-metric"):
        decode_cursor(cursor, "metric")
    with pytest.raises(ListingError, match="not a cursor"):
        decode_cursor(encode_cursor("created", ("x", "a")), "created")


def test_pages_by_cursor_cover_every_row_once_in_each_sort() -> None:
    """Walking the pages of two by cursor yields the sorted rows, each once."""
    for sort in ("created", "-created", "id", "-id", "state", "metric", "-metric"):
        query = parse_query({"sort": sort}, 0)
        seen: list[str] = []
        while True:
            chosen = select(ROWS, query, 2)
            seen += [r.id for r in chosen.rows]
            if chosen.next_cursor is None:
                break
            query = parse_query({"sort": sort, "cursor": chosen.next_cursor}, 0)
        assert sorted(seen) == ["a", "b", "c", "d"], sort
        assert len(seen) == 4, sort


def test_metric_sorts_best_or_worst_first_with_tenants_without_one_last() -> None:
    """``-metric`` puts .93 first, ``metric`` .85 first (ties by id); no value comes last."""
    best = select(ROWS, TenantQuery(sort="metric", descending=True), 10)
    assert [r.id for r in best.rows] == ["a", "d", "b", "c"]
    worst = select(ROWS, TenantQuery(sort="metric"), 10)
    assert [r.id for r in worst.rows] == ["b", "d", "a", "c"]


def test_offsets_still_page_the_filtered_sorted_rows() -> None:
    """Without a cursor the offset counts among the rows that passed the filters."""
    chosen = select(ROWS, TenantQuery(states=frozenset({"up_to_date"}), offset=1), 1)
    assert [r.id for r in chosen.rows] == ["a"]
    assert (chosen.matched, chosen.next_offset) == (3, 2)


def test_activity_spans_only_the_part_of_the_window_with_runs() -> None:
    """Runs of the last ten minutes fall in 30-second buckets from the oldest to now; an
    hour-old run widens them to two minutes; runs of the last seconds get ten-second buckets,
    at least twelve of them; no runs leaves the hourly window."""
    now = 100 * HOUR_MS + 30 * MINUTE_MS
    recent = [("succeeded", now - 10 * MINUTE_MS), ("failed", now - 10 * MINUTE_MS + 5)]
    seconds, buckets = activity_window(recent, now, 24)
    assert seconds == 30
    assert len(buckets) == 21
    assert buckets[0] == (now - 10 * MINUTE_MS, {"succeeded": 1, "failed": 1})
    assert all(counts == {} for _, counts in buckets[1:])
    seconds, buckets = activity_window([*recent, ("queued", now - 70 * MINUTE_MS)], now, 24)
    assert seconds == 120
    assert sum(sum(c.values()) for _, c in buckets) == 3
    later = now + 5_000
    seconds, buckets = activity_window([("queued", later - 3_000)], later, 24)
    assert (seconds, len(buckets)) == (10, 12)
    assert buckets[-1][1] == {"queued": 1}
    seconds, buckets = activity_window([], now, 24)
    assert (seconds, len(buckets)) == (3600, 24)


def test_a_page_in_index_order_is_the_page_select_picks_from_every_row() -> None:
    """For the index's own order (creation, no filter, no cursor) the page read at its
    offset gives the rows, next cursor and start ``select`` gives from the whole fleet."""
    query = parse_query({}, 0)
    assert query.index_order
    for offset in range(len(ROWS) + 1):
        for limit in (1, 2, len(ROWS)):
            at = parse_query({}, offset)
            read = ROWS[offset : offset + limit + 1]  # what the index holds there
            assert index_page(read, at, limit, len(ROWS)) == select(ROWS, at, limit)


def test_only_the_unfiltered_creation_order_without_a_cursor_is_index_order() -> None:
    """A filter, another sort, a descending order or a cursor needs the rows of the fleet."""
    cursor = encode_cursor("created", (1.0, "b"))
    for params in (
        {"state": "no_model"},
        {"kind": "classic"},
        {"prefix": "a"},
        {"sort": "id"},
        {"sort": "-created"},
        {"cursor": cursor},
    ):
        assert not parse_query(params, 0).index_order, params
