"""Training data paths belong to tenants (worker/datapaths.py)."""

from __future__ import annotations

import pytest

from worker.datapaths import (
    FOREIGN_DATA_PATH,
    DataPathError,
    check_data_path,
    check_global_parameters,
    validate_shared_prefix,
)

SHARED = ("shared/public/",)


@pytest.mark.parametrize("path", ["data/acme/v1.csv", "data/acme/sub/dir/x.csv"])
def test_a_tenant_s_own_paths_pass(path: str) -> None:
    check_data_path("acme", path)


@pytest.mark.parametrize(
    "path",
    [
        "data/other/v1.csv",
        "data/acme-two/v1.csv",  # a tenant whose id starts like this one's
        "data/acme",
        "data/acme/",
        "data/acmev1.csv",
        "models/acme/r.ilearner",
        "models/other/r.eval.csv",
        "shared/public/x.csv",  # shared only for admins (who pass the prefixes)
        "data/acme/../other/v1.csv",
        "elsewhere.csv",
    ],
)
def test_every_other_path_is_foreign_for_a_tenant(path: str) -> None:
    with pytest.raises(DataPathError) as caught:
        check_data_path("acme", path)
    assert caught.value.code == FOREIGN_DATA_PATH
    assert "data/acme/" in str(caught.value)


def test_shared_prefixes_open_only_their_own_blobs() -> None:
    check_data_path("acme", "shared/public/bikes.csv", SHARED)
    for path in ("shared/other.csv", "shared/public", "data/other/v1.csv"):
        with pytest.raises(DataPathError):
            check_data_path("acme", path, SHARED)


@pytest.mark.parametrize("prefix", ["data/", "data/x/", "models/", "shared", "/abs/", "a/../b/"])
def test_shared_prefixes_never_cover_tenant_roots(prefix: str) -> None:
    with pytest.raises(ValueError, match="shared data prefix"):
        validate_shared_prefix(prefix)


def test_a_tenant_may_not_set_the_data_url_parameter() -> None:
    check_global_parameters({"Alpha": "1"}, "URI")
    check_global_parameters({"URI": "x"}, None)
    with pytest.raises(DataPathError) as caught:
        check_global_parameters({"URI": "https://acct/data/other/v1.csv"}, "URI")
    assert caught.value.field == "global_parameters.URI"
