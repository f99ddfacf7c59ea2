"""Errors in the CLI's own words: API routes named as CLI commands, close ids for unknown ones."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

# API problem texts name routes; an operator at the CLI wants the command that does the same.
_ROUTE_COMMANDS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"PUT /v1/tenants/([a-z0-9-]+)/data"), r"'retrainq data upload \1 FILE'"),
    (re.compile(r"POST /v1/tenants/([a-z0-9-]+)/retrains"), r"'retrainq retrain \1'"),
    (re.compile(r"POST /v1/tenants/([a-z0-9-]+)/rollback"), r"'retrainq rollback \1'"),
    (re.compile(r"PATCH /v1/tenants/([a-z0-9-]+)"), r"'retrainq tenants patch \1'"),
    (re.compile(r"DELETE /v1/tenants/([a-z0-9-]+)"), r"'retrainq tenants offboard \1'"),
    (re.compile(r"GET /v1/tenants/([a-z0-9-]+)"), r"'retrainq tenants show \1'"),
    (re.compile(r"DELETE /v1/runs/([0-9a-f]+)"), r"'retrainq runs cancel \1'"),
    (re.compile(r"GET /v1/runs/([0-9a-f]+)"), r"'retrainq runs show \1'"),
    (re.compile(r"POST /v1/tenants\b"), "'retrainq tenants create'"),
    (re.compile(r"POST /v1/batches\b"), "'retrainq bulk'"),
)
_NO_TENANT = re.compile(r"^no tenant '([^']*)'$")


def in_cli_terms(detail: str) -> str:
    """``detail`` with every API route it names replaced by the matching CLI command."""
    for pattern, command in _ROUTE_COMMANDS:
        detail = pattern.sub(command, detail)
    return detail


def unknown_tenant(detail: str) -> str | None:
    """The tenant id of a ``no tenant 'x'`` problem, else None."""
    found = _NO_TENANT.match(detail)
    return found[1] if found else None


def close_ids(wanted: str, known: Iterable[str], count: int = 3) -> list[str]:
    """Up to ``count`` ids of ``known`` that look like ``wanted`` (a typo, a missing suffix)."""
    ids = list(known)
    close = difflib.get_close_matches(wanted, ids, n=count, cutoff=0.6)
    prefixed = [i for i in ids if i.startswith(wanted) and i not in close] if wanted else []
    return (close + prefixed)[:count]


def did_you_mean(ids: list[str]) -> str:
    """``; did you mean 'a' or 'b'?`` for a non-empty list, else empty."""
    if not ids:
        return ""
    quoted = [f"'{i}'" for i in ids]
    choices = quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]
    return f"; did you mean {choices}?"
