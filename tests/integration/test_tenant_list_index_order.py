"""``GET /v1/tenants`` in creation order without a filter reads its page straight from the
tenant index (no scan of the fleet), and its cursor continues on the scan's pages."""

from __future__ import annotations

import pytest

from tests.integration.conftest_api import ADMIN, ApiTestClient, onboard
from tests.integration.test_api_tenant_list import ids, listing

pytestmark = pytest.mark.timeout(120)


async def test_the_first_pages_come_from_the_index_and_the_cursor_goes_on(
    api: ApiTestClient,
) -> None:
    """Four tenants onboarded in order, one offboarded: the unfiltered page in creation
    order lists the others oldest first, says how many match, and its cursor (then read by
    the scan) and an offset reach the rest, each tenant once."""
    for name in ("t-one", "t-two", "t-three", "t-four"):
        await onboard(api, name, train=False)
    gone = await api.delete("/v1/tenants/t-two", headers=ADMIN)
    assert gone.status in (200, 202, 204), await gone.text()
    first = await listing(api, "limit=2")
    assert ids(first) == ["t-one", "t-three"]
    assert (first["total"], first["matched"], first["scanned"]) == (3, 3, 3)
    assert first["next_cursor"] is not None
    rest = await listing(api, f"limit=2&cursor={first['next_cursor']}")
    assert ids(rest) == ["t-four"]
    assert rest["next_cursor"] is None
    by_offset = await listing(api, "limit=2&offset=2")
    assert ids(by_offset) == ["t-four"]
    assert by_offset["next_offset"] is None
