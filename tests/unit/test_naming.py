"""Classic endpoint names derived from tenant ids."""

from __future__ import annotations

import random
import string

import pytest

from worker.naming import ENDPOINT_NAME, TENANT_ID, endpoint_name_for

_FIRST = string.ascii_lowercase + string.digits
_REST = _FIRST + "-"


def _random_tenant_ids(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    ids: set[str] = set()
    while len(ids) < count:
        length = rng.choice([1, 2, 5, 14, 15, 24, 40, 63])
        ids.add(rng.choice(_FIRST) + "".join(rng.choice(_REST) for _ in range(length - 1)))
    return sorted(ids)


def test_name_is_deterministic_and_readable() -> None:
    """The same tenant always gets the same name, starting with its id's letters."""
    name = endpoint_name_for("contoso-east-01")
    assert name == endpoint_name_for("contoso-east-01")
    assert name.startswith("contosoeast01")
    assert ENDPOINT_NAME.fullmatch(name)


def test_every_generated_name_is_valid_and_distinct() -> None:
    """Over 20,000 random tenant ids: valid names (1-24 [a-z0-9], not default), no clash."""
    ids = _random_tenant_ids(20_000, seed=4)
    names = {endpoint_name_for(tenant_id) for tenant_id in ids}
    assert len(names) == len(ids)
    for name in names:
        assert ENDPOINT_NAME.fullmatch(name), name
        assert name != "default"


def test_ids_differing_only_after_the_prefix_or_in_hyphens_get_different_names() -> None:
    """Ids that sanitize to the same readable part are kept apart by the hash."""
    similar = [
        "a-b",
        "ab",
        "a--b",
        "abcdefghijklmnop-1",
        "abcdefghijklmnop-2",
        "abcdefghijklmnopq",
        "default",
        "default-",
    ]
    names = [endpoint_name_for(tenant_id) for tenant_id in similar]
    assert len(set(names)) == len(names)
    assert all(TENANT_ID.fullmatch(t) for t in similar)


def test_default_tenant_does_not_get_the_default_endpoint() -> None:
    """The unpatchable ``default`` endpoint is never a tenant's endpoint."""
    assert endpoint_name_for("default") != "default"


def test_taken_name_moves_to_the_next_deterministic_candidate() -> None:
    """A name stored on another tenant is skipped, and the result stays reproducible."""
    first = endpoint_name_for("tenant-7")
    second = endpoint_name_for("tenant-7", taken={first})
    assert second != first
    assert ENDPOINT_NAME.fullmatch(second)
    assert second == endpoint_name_for("tenant-7", taken={first})
    assert endpoint_name_for("tenant-7", taken={"unrelated"}) == first


@pytest.mark.parametrize("bad", ["", "-a", "A", "a_b", "a/b", "a.b", "x" * 64, "tenant\n"])
def test_rejects_what_is_not_a_tenant_id(bad: str) -> None:
    """Names are only derived from valid tenant ids."""
    with pytest.raises(ValueError, match="not a tenant id"):
        endpoint_name_for(bad)
