"""Merging a page of a tenant's runs from Redis and the archive (pure)."""

from __future__ import annotations

from datetime import timedelta

from tests.unit.test_archive import NOW, run
from worker.archive_listing import key_of, merge_page, month_key


def test_a_page_merges_both_sources_newest_first_below_the_cursor() -> None:
    """Live and archived runs interleave by creation time; the cursor is exclusive."""
    times = {name: NOW - timedelta(hours=hours) for hours, name in enumerate("abcde")}
    made = {name: run(name, created_at=at) for name, at in times.items()}
    live = [made["a"], made["d"]]
    archived = [made["b"], made["c"], made["e"]]
    first = merge_page(live, archived, None, 2)
    assert [(i.run.id, i.archived) for i in first.items] == [("a", False), ("b", True)]
    assert first.next_key == key_of(made["b"])
    rest = merge_page(live, archived, first.next_key, 10)
    assert [i.run.id for i in rest.items] == ["c", "d", "e"]
    assert rest.next_key is None


def test_a_run_in_both_sources_is_shown_once_as_live() -> None:
    """During a pass a run may be in its part and still in Redis: one row, not archived."""
    both = run("same")
    page = merge_page([both], [both], None, 5)
    assert [(i.run.id, i.archived) for i in page.items] == [("same", False)]


def test_months_sort_by_year_then_month() -> None:
    """2026-12 comes after 2026-02 and before 2027-01."""
    assert sorted(["2027-01", "2026-12", "2026-02"], key=month_key) == [
        "2026-02",
        "2026-12",
        "2027-01",
    ]
