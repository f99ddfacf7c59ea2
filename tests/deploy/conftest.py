"""Fixtures of the deploy tests: each Kustomize overlay rendered once per session."""

from __future__ import annotations

import pytest

from tests.deploy.support import OVERLAYS, Doc, render


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[Doc]]:
    """``kubectl kustomize`` output of base, dev and prod, parsed."""
    return {overlay: render(overlay) for overlay in OVERLAYS}
