"""Archive parts of finished runs in blob storage: their names, their bytes, reading one back.

A part is gzip JSON Lines, one run record a line, sorted by run id and compressed without a
timestamp, so the same runs always make the same bytes. Parts are never rewritten; each
holds one tenant's runs of one month (by creation) archived by one pass of the archiver:
``archive/runs/{tenant}/{yyyy-mm}/part-{pass}.jsonl.gz``. Redis keeps each part's name once,
under a number, and per archived run a few bytes naming that number (the ledger's index).
"""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from dataclasses import dataclass

import structlog

from worker.blobs import BlobNotFoundError, BlobStore
from worker.run.ledger import Ledger
from worker.run.model import Run

log = structlog.get_logger("retrainq.archive")

ARCHIVE_PREFIX = "archive/runs"


@dataclass(frozen=True)
class PartName:
    """Where one archive part is: tenant, month (``yyyy-mm``) and the pass that wrote it."""

    tenant_id: str
    month: str
    pass_id: str

    @classmethod
    def parse(cls, where: str) -> PartName:
        """The name from its index form ``{tenant}/{yyyy-mm}/{pass}``."""
        tenant_id, month, pass_id = where.split("/")
        return cls(tenant_id, month, pass_id)

    @property
    def where(self) -> str:
        """The index form kept in Redis for each archived run."""
        return f"{self.tenant_id}/{self.month}/{self.pass_id}"

    @property
    def path(self) -> str:
        """The part's blob path."""
        return f"{ARCHIVE_PREFIX}/{self.tenant_id}/{self.month}/part-{self.pass_id}.jsonl.gz"


def encode_part(runs: Sequence[Run]) -> bytes:
    """The part's bytes: the runs by id, one JSON line each, gzip without a timestamp."""
    lines = "".join(run.model_dump_json() + "\n" for run in sorted(runs, key=lambda r: r.id))
    return gzip.compress(lines.encode(), mtime=0)


def decode_part(data: bytes) -> list[Run]:
    """The runs a part holds."""
    text = gzip.decompress(data).decode()
    return [Run.model_validate_json(line) for line in text.splitlines() if line]


class ArchivedRuns:
    """Reads of archived runs: the id -> part index in Redis, then the part itself."""

    def __init__(self, ledger: Ledger, blobs: BlobStore) -> None:
        self.ledger = ledger
        self.blobs = blobs

    async def find(self, run_id: str, tenant_id: str | None = None) -> Run | None:
        """The archived run ``run_id``, or None; with ``tenant_id``, only if it is that
        tenant's (another tenant's run is None, exactly like an unknown one)."""
        for where in await self.ledger.archived_candidates(run_id):
            name = PartName.parse(where)
            if tenant_id is not None and name.tenant_id != tenant_id:
                continue
            try:
                runs = decode_part(await self.blobs.download(name.path))
            except BlobNotFoundError:
                log.error("archive.part_missing", run_id=run_id, part=name.path)
                continue
            for run in runs:
                if run.id == run_id and run.tenant_id == name.tenant_id:
                    return run
        return None
