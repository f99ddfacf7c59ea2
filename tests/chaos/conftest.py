"""Fixtures of the chaos tests: a fleet on flushed Redis and a reset, fault-free emulator."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.chaos.support import DEFAULT_EMULATOR_SETTINGS
from tests.integration.fleet import Fleet, close_fleet, open_fleet


@pytest.fixture
async def fleet(
    redis_url: str, blob_connection_string: str, emulator_url: str, tmp_path: Path
) -> AsyncIterator[Fleet]:
    """A fleet; the emulator's faults and settings are back to defaults before and after."""
    opened = await open_fleet(redis_url, blob_connection_string, emulator_url, tmp_path)
    await opened.emulator("PUT", "/_emulator/faults", {})
    await opened.emulator("PUT", "/_emulator/settings", DEFAULT_EMULATOR_SETTINGS)
    try:
        yield opened
    finally:
        opened.stop_workers()
        await opened.emulator("PUT", "/_emulator/faults", {})
        await opened.emulator("PUT", "/_emulator/settings", DEFAULT_EMULATOR_SETTINGS)
        await close_fleet(opened)
