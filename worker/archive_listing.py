"""A tenant's runs newest first, across Redis and the archive, one page at a time.

Runs are ordered by (creation time in ms, run id), newest first; a page starts strictly
below the key of the last run of the previous page, so pages neither repeat nor skip a run
while the archiver moves runs from Redis to blob storage between two requests. Live runs
come from the tenant's run set, archived ones from its parts, newest month first (every
run of a month is newer than every run of the months before, so reading stops at the
first month that completes the page).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from worker.archive_blobs import ArchiveBlobs
from worker.archive_parts import ARCHIVE_PREFIX, decode_part
from worker.blobs import BlobStore
from worker.run.archive_ledger import ArchiveLedger
from worker.run.model import Run
from worker.store import Store

# Set scores are stamped by Redis a moment after ``created_at``; a live read reaches this far
# above the cursor and this many runs past the page, so no run is missed over that skew.
SKEW_MS = 5000
SLACK = 100
READ_CONCURRENCY = 16
SCAN_PAGE = 200

Key = tuple[int, str]


def key_of(run: Run) -> Key:
    """A run's place in the listing: (creation ms, id)."""
    return int(run.created_at.timestamp() * 1000), run.id


@dataclass(frozen=True)
class ListedRun:
    """A run of the listing and whether it was read from the archive."""

    run: Run
    archived: bool


@dataclass(frozen=True)
class TenantRunPage:
    """One page of a tenant's runs and the key the next page starts below (None: the end)."""

    items: list[ListedRun]
    next_key: Key | None


def merge_page(
    live: list[Run], archived: list[Run], before: Key | None, limit: int
) -> TenantRunPage:
    """The newest ``limit`` runs below ``before`` of both sources (a run in both, during an
    archiver pass, is shown once, as live)."""
    seen: dict[str, ListedRun] = {run.id: ListedRun(run, True) for run in archived}
    seen.update({run.id: ListedRun(run, False) for run in live})
    kept = [item for item in seen.values() if before is None or key_of(item.run) < before]
    kept.sort(key=lambda item: key_of(item.run), reverse=True)
    page = kept[:limit]
    more = len(kept) > limit
    return TenantRunPage(page, key_of(page[-1].run) if more and page else None)


def month_key(month: str) -> int:
    """``yyyy-mm`` as a sortable number."""
    year, number = month.split("-")
    return int(year) * 100 + int(number)


class TenantRuns:
    """Pages of one tenant's runs from Redis and its archive parts."""

    def __init__(self, store: Store, blobs: BlobStore) -> None:
        self.store = store
        self.blobs = blobs
        self.prefixes = ArchiveBlobs(blobs)
        self.ledger = ArchiveLedger(store.redis, store.keys)

    async def page(self, tenant_id: str, before: Key | None, limit: int) -> TenantRunPage:
        """The newest ``limit`` runs of the tenant below ``before`` (from the newest)."""
        live = await self._live(tenant_id, before, limit)
        archived = await self._archived(tenant_id, before, limit)
        return merge_page(live, archived, before, limit)

    async def scan(
        self,
        tenant_id: str,
        keeps: Callable[[Run], bool],
        want: int,
        most: int,
        since: datetime | None = None,
    ) -> tuple[list[ListedRun], int, bool]:
        """The newest ``want`` runs ``keeps`` accepts, reading at most ``most`` runs (none
        created before ``since``): (runs, runs read, whether the bound cut the scan short)."""
        kept: list[ListedRun] = []
        scanned = 0
        before: Key | None = None
        while len(kept) < want:
            if scanned >= most:
                return kept, scanned, True
            found = await self.page(tenant_id, before, min(SCAN_PAGE, most - scanned))
            scanned += len(found.items)
            for item in found.items:
                if since is not None and item.run.created_at < since:
                    return kept, scanned, False
                if keeps(item.run):
                    kept.append(item)
            if found.next_key is None:
                break
            before = found.next_key
        return kept, scanned, False

    async def _live(self, tenant_id: str, before: Key | None, limit: int) -> list[Run]:
        high = None if before is None else before[0] + SKEW_MS
        ids = await self.ledger.tenant_run_ids_below(tenant_id, high, limit + SLACK)
        return await self.store.get_runs(ids)

    async def _archived(self, tenant_id: str, before: Key | None, limit: int) -> list[Run]:
        base = f"{ARCHIVE_PREFIX}/{tenant_id}/"
        months: dict[str, list[str]] = {}
        for path in await self.prefixes.paths(base):
            months.setdefault(path[len(base) :].split("/")[0], []).append(path)
        newest_first = sorted(months, key=month_key, reverse=True)
        if before is not None:
            cut = month_key(datetime.fromtimestamp(before[0] / 1000, UTC).strftime("%Y-%m"))
            newest_first = [m for m in newest_first if month_key(m) <= cut]
        found: list[Run] = []
        for month in newest_first:
            found += [
                run
                for run in await self._read(months[month])
                if run.tenant_id == tenant_id and (before is None or key_of(run) < before)
            ]
            if len(found) > limit:
                break
        return found

    async def _read(self, paths: list[str]) -> list[Run]:
        gate = asyncio.Semaphore(READ_CONCURRENCY)

        async def one(path: str) -> list[Run]:
            async with gate:
                return decode_part(await self.blobs.download(path))

        parts = await asyncio.gather(*(one(path) for path in paths))
        return [run for part in parts for run in part]
