"""Which blob paths a tenant's training data may come from (pure checks, API and worker).

A tenant's data lives under its own prefix, ``data/{tenant}/``. An operator may name shared
prefixes (``shared_data_prefixes``) that admins can point a tenant at; those never lie under
``data/`` or ``models/``, so no setting can open one tenant's blobs to another.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

DATA_ROOT = "data"
MODELS_ROOT = "models"
FOREIGN_DATA_PATH = "foreign_data_path"
RESERVED_PARAMETER = "reserved_parameter"
_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_TENANT_ROOTS = (f"{DATA_ROOT}/", f"{MODELS_ROOT}/")


class DataPathError(ValueError):
    """A data path or parameter a tenant may not use; ``code`` is the run's error code."""

    def __init__(self, message: str, *, code: str = FOREIGN_DATA_PATH, field: str = "data_path"):
        super().__init__(message)
        self.code = code
        self.field = field


def tenant_data_prefix(tenant_id: str) -> str:
    """The prefix every blob of a tenant's own training data starts with."""
    return f"{DATA_ROOT}/{tenant_id}/"


def _segments_ok(path: str) -> bool:
    return all(_SEGMENT.fullmatch(s) and ".." not in s for s in path.split("/"))


def validate_shared_prefix(prefix: str) -> str:
    """A shared prefix as a setting: plain segments ending in ``/``, outside tenant roots."""
    if not prefix.endswith("/") or not _segments_ok(prefix[:-1]):
        raise ValueError(f"shared data prefix {prefix!r}: plain path segments ending in '/'")
    if prefix.startswith(_TENANT_ROOTS):
        raise ValueError(
            f"shared data prefix {prefix!r} may not lie under {DATA_ROOT}/ or {MODELS_ROOT}/ "
            "(tenants' own blobs)"
        )
    return prefix


def check_data_path(tenant_id: str, path: str, shared_prefixes: Sequence[str] = ()) -> None:
    """Raise ``DataPathError`` unless ``path`` is ``tenant_id``'s own or under a shared prefix.

    Tenant callers pass no shared prefixes; admins and the worker pass the configured ones.
    """
    own = tenant_data_prefix(tenant_id)
    if not _segments_ok(path):
        raise DataPathError(f"data_path: not a valid blob path: {path[:120]!r}")
    if path.startswith(own) and len(path) > len(own):
        return
    if not path.startswith(_TENANT_ROOTS) and any(path.startswith(p) for p in shared_prefixes):
        return
    allowed = [own, *(p for p in shared_prefixes if not p.startswith(_TENANT_ROOTS))]
    raise DataPathError(
        f"data_path: {path[:120]!r} is not under this tenant's prefix; allowed: "
        + ", ".join(repr(p) for p in allowed)
    )


def check_global_parameters(parameters: Mapping[str, str], data_parameter: str | None) -> None:
    """Refuse a global parameter that would carry a data URL (retrainq sets that one itself)."""
    if data_parameter is not None and data_parameter in parameters:
        raise DataPathError(
            f"global_parameters.{data_parameter}: set by retrainq from data_path "
            "(the training data is always the tenant's own)",
            code=RESERVED_PARAMETER,
            field=f"global_parameters.{data_parameter}",
        )
