"""What ``GET /v1/tenants`` keeps and in which order: filters, sorts and the page cursor.

Pure functions over ``worker.views.TenantRow``: the route reads the rows, this module picks a
page, and the route reads the full records of that page only. A cursor names the sort and the
sort key of the last tenant shown, so the next page starts right after it even when tenants
were onboarded or offboarded in between (an offset would skip or repeat them).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from worker.schemas import TARGET_KINDS
from worker.views import TenantRow

MODEL_STATES = ("retraining", "up_to_date", "kept_previous", "no_model")
SORTS = ("created", "id", "state", "metric")
KINDS = TARGET_KINDS
PREFIX = re.compile(r"^[a-z0-9-]{0,63}$")
SortKey = tuple[Any, ...]
_NUMBER = (int, float)
# The types of each sort's key, so a cursor's key compares with the rows' keys.
_SHAPES: dict[str, tuple[tuple[type, ...], ...]] = {
    "created": (_NUMBER, (str,)),
    "id": ((str,),),
    "state": ((str,), (str,)),
    "metric": ((bool,), _NUMBER, (str,)),
}


class ListingError(ValueError):
    """A query parameter of the listing is not one it understands (the route answers 422)."""


@dataclass(frozen=True)
class TenantQuery:
    """The listing's filters, sort, and where the page starts (a cursor, else an offset)."""

    states: frozenset[str] | None = None
    kind: str | None = None
    prefix: str = ""
    sort: str = "created"
    descending: bool = False
    after: SortKey | None = None
    offset: int = 0

    def keeps(self, row: TenantRow) -> bool:
        """Whether ``row`` passes the state, kind and id prefix filters."""
        return (
            (self.states is None or row.model_state in self.states)
            and (self.kind is None or row.kind == self.kind)
            and row.id.startswith(self.prefix)
        )

    def key(self, row: TenantRow) -> SortKey:
        """The row's place in this sort; ties are broken by id. Tenants without a metric
        value come last in both directions."""
        if self.sort == "id":
            return (row.id,)
        if self.sort == "state":
            return (row.model_state, row.id)
        if self.sort == "metric":
            has = row.metric is not None
            return (has if self.descending else not has, row.metric or 0.0, row.id)
        return (row.created, row.id)

    @property
    def index_order(self) -> bool:
        """Whether the query asks for the tenant index's own order (by creation, ascending)
        without a filter or a cursor: its page is then read at its offset from the index."""
        plain = self.states is None and self.kind is None and not self.prefix
        return plain and self.sort == "created" and not self.descending and self.after is None

    @property
    def sort_name(self) -> str:
        """The sort as the ``sort`` parameter spells it (``-metric`` for descending)."""
        return f"-{self.sort}" if self.descending else self.sort


def parse_states(raw: str | None) -> frozenset[str] | None:
    """Comma-separated model states, or None for every state."""
    if not raw:
        return None
    states = frozenset(part.strip() for part in raw.split(",") if part.strip())
    if not states or not states <= set(MODEL_STATES):
        raise ListingError(f"state: one or more of {', '.join(MODEL_STATES)}")
    return states


def parse_sort(raw: str | None) -> tuple[str, bool]:
    """``created`` (the default), ``id``, ``state`` or ``metric``; a leading ``-`` reverses."""
    raw = raw or "created"
    descending = raw.startswith("-")
    name = raw.removeprefix("-")
    if name not in SORTS:
        raise ListingError(f"sort: one of {', '.join(SORTS)}, with '-' first for descending")
    return name, descending


def parse_query(params: dict[str, str], offset: int) -> TenantQuery:
    """The listing's query from the request's parameters (``ListingError`` when one is bad)."""
    kind = params.get("kind") or None
    if kind not in (None, *KINDS):
        raise ListingError(f"kind: one of {', '.join(KINDS)}")
    prefix = params.get("prefix", "")
    if not PREFIX.fullmatch(prefix):
        raise ListingError("prefix: up to 63 lowercase letters, digits and hyphens")
    sort, descending = parse_sort(params.get("sort"))
    cursor = params.get("cursor") or None
    after = None if cursor is None else decode_cursor(cursor, f"-{sort}" if descending else sort)
    return TenantQuery(
        states=parse_states(params.get("state")),
        kind=kind,
        prefix=prefix,
        sort=sort,
        descending=descending,
        after=after,
        offset=0 if after is not None else offset,
    )


def encode_cursor(sort_name: str, key: SortKey) -> str:
    """An opaque cursor: the sort and the key of the last tenant shown."""
    raw = json.dumps([sort_name, *key], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, sort_name: str) -> SortKey:
    """The key a cursor of this sort names; ``ListingError`` for a cursor of another sort or
    none of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = json.loads(raw)
    except (binascii.Error, ValueError):
        raise ListingError("cursor: not a cursor this listing returned") from None
    if not isinstance(value, list) or not value or not isinstance(value[0], str):
        raise ListingError("cursor: not a cursor this listing returned")
    if value[0] != sort_name:
        raise ListingError(f"cursor: made for sort={value[0]}, not sort={sort_name}")
    shape = _SHAPES[sort_name.removeprefix("-")]
    key = value[1:]
    if len(key) != len(shape) or not all(
        isinstance(part, types) for part, types in zip(key, shape, strict=True)
    ):
        raise ListingError("cursor: not a cursor this listing returned")
    return tuple(key)


@dataclass(frozen=True)
class Selection:
    """A page of rows, how many rows passed the filters, and where the next page starts."""

    rows: list[TenantRow]
    matched: int
    start: int  # position of the first row among those that passed
    next_cursor: str | None

    @property
    def next_offset(self) -> int | None:
        """The offset of the next page, for callers that page by offset."""
        return None if self.next_cursor is None else self.start + len(self.rows)


def select(rows: Sequence[TenantRow], query: TenantQuery, limit: int) -> Selection:
    """The page of ``rows`` the query asks for, sorted, of at most ``limit`` rows."""
    kept = sorted(filter(query.keeps, rows), key=query.key, reverse=query.descending)
    start = query.offset
    if query.after is not None:
        after = query.after
        start = next(
            (
                i
                for i, row in enumerate(kept)
                if (query.key(row) < after if query.descending else query.key(row) > after)
            ),
            len(kept),
        )
    page = kept[start : start + limit]
    more = start + limit < len(kept)
    cursor = encode_cursor(query.sort_name, query.key(page[-1])) if more and page else None
    return Selection(rows=page, matched=len(kept), start=start, next_cursor=cursor)


def index_page(rows: Sequence[TenantRow], query: TenantQuery, limit: int, total: int) -> Selection:
    """The page of an ``index_order`` query from the rows read at its offset (up to
    ``limit`` + 1: one more says there is a next page), of ``total`` tenants: the page
    ``select`` would pick from every row."""
    page = list(rows[:limit])
    more = len(rows) > limit
    cursor = encode_cursor(query.sort_name, query.key(page[-1])) if more and page else None
    return Selection(rows=page, matched=total, start=query.offset, next_cursor=cursor)
