"""The retention one tenant gets: its own overrides over the global archive settings."""

from __future__ import annotations

from dataclasses import dataclass

from worker.schemas import Retention, Tenant
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


# An offboarded tenant past its grace period keeps nothing in Redis.
GONE = Policy(keep_runs=0, keep_days=0, keep_deployed=0)


def past_grace(tenant: Tenant | None, grace_end: float) -> bool:
    """Whether ``tenant`` was offboarded before ``grace_end`` (s since epoch)."""
    return (
        tenant is not None
        and tenant.deleted
        and tenant.deleted_at is not None
        and tenant.deleted_at.timestamp() < grace_end
    )
