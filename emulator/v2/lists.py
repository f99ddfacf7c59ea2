"""Pageable ARM lists of the v2 surfaces: tag, property and archive filters, ``$skip`` pages.

The generated client documents ``tag`` as "Jobs returned will have this tag key" and ``tags``
/ ``properties`` as "Comma-separated list of ... names (and optionally values). Example:
tag1,tag2=value2" (shared/PROTOCOL-V2 §2.1, §3). ``listViewType`` is ``ActiveOnly`` (the
default: not archived), ``ArchivedOnly`` or ``All``. A page holds ``list_page_size`` items in
creation order; ``nextLink`` is an absolute URL carrying the same filters and the next
``$skip``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar
from urllib.parse import urlencode

from aiohttp import web

from emulator.errors import ApiError
from emulator.state import STATE

VIEW_TYPES = frozenset({"ActiveOnly", "ArchivedOnly", "All"})
T = TypeVar("T")


def parse_filter(text: str | None) -> list[tuple[str, str | None]]:
    """``a,b=1`` → ``[("a", None), ("b", "1")]`` (empty parts are ignored)."""
    wanted: list[tuple[str, str | None]] = []
    for part in (text or "").split(","):
        name, sep, value = part.strip().partition("=")
        if name:
            wanted.append((name, value if sep else None))
    return wanted


def matches(values: Mapping[str, Any] | None, wanted: Sequence[tuple[str, str | None]]) -> bool:
    """Whether ``values`` has every wanted key (with the wanted value where one is given)."""
    have = values or {}
    return all(
        name in have and (value is None or str(have[name]) == value) for name, value in wanted
    )


def view_matches(view: str | None, archived: bool) -> bool:
    """Whether an item archived (or not) is in the ``listViewType`` view."""
    view = view or "ActiveOnly"
    if view not in VIEW_TYPES:
        raise ApiError(400, "UserError", f"listViewType must be one of {sorted(VIEW_TYPES)}.")
    return view == "All" or (view == "ArchivedOnly") == archived


def page(
    request: web.Request,
    items: Sequence[T],
    render: Callable[[T], dict[str, Any]],
    page_size: int,
) -> web.Response:
    """One page of ``items`` from ``$skip`` (each rendered), with ``nextLink`` when more
    follow."""
    raw = request.query.get("$skip", "0")
    if not raw.isdigit():
        raise ApiError(400, "UserError", "$skip must be a whole number.")
    skip = int(raw)
    body: dict[str, Any] = {"value": [render(item) for item in items[skip : skip + page_size]]}
    if skip + page_size < len(items):
        query = [(k, v) for k, v in request.query.items() if k != "$skip"]
        query.append(("$skip", str(skip + page_size)))
        base = request.app[STATE].base_url
        body["nextLink"] = f"{base}{request.path}?{urlencode(query)}"
    return web.json_response(body)
