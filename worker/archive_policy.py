"""The retention one tenant gets: its own overrides over the global archive settings."""

from __future__ import annotations

from dataclasses import dataclass

from worker.schemas import Retention
from worker.settings import ArchiveConfig


@dataclass(frozen=True)
class Policy:
    """How many finished runs, how many days and how many deployed versions a tenant keeps."""

    keep_runs: int
    keep_days: float
    keep_deployed: int


def policy_for(config: ArchiveConfig, retention: Retention | None) -> Policy:
    """The global retention of ``config`` with the fields ``retention`` sets replacing it."""
    own = retention or Retention()
    return Policy(
        keep_runs=config.keep_runs if own.keep_runs is None else own.keep_runs,
        keep_days=config.keep_days if own.keep_days is None else own.keep_days,
        keep_deployed=config.keep_deployed if own.keep_deployed is None else own.keep_deployed,
    )
