"""Fixtures of the integration tests (API fixtures live in ``conftest_api``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.integration.conftest_api import api, api_settings
from tests.integration.fleet import Fleet, close_fleet, open_fleet

__all__ = ["api", "api_settings", "fleet"]


@pytest.fixture
async def fleet(
    redis_url: str, blob_connection_string: str, emulator_url: str, tmp_path: Path
) -> AsyncIterator[Fleet]:
    """A fleet on flushed Redis and a reset emulator (faults cleared); tests start workers."""
    opened = await open_fleet(redis_url, blob_connection_string, emulator_url, tmp_path)
    yield opened
    await opened.emulator("PUT", "/_emulator/faults", {})
    await close_fleet(opened)
