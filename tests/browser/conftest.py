"""Fixtures for browser tests: a real local stack (``DevStack``) and headless Debian Chromium.

Chromium comes from Debian (``make browser-deps`` installs it); Playwright only drives it
(``npx playwright install`` cannot download browsers here). Without /usr/bin/chromium the
tests fail with that instruction.
"""

from __future__ import annotations

import io
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from playwright.async_api import Browser, ViewportSize, async_playwright
from pydantic import SecretStr
from rich.console import Console

from producer.cli.client import ApiClient
from producer.devtools.demo import Demo
from producer.devtools.devstack import DevStack
from producer.devtools.processes import PROJECT_ROOT
from tests.integration.conftest_api import api, api_settings
from worker.settings import WorkerSettings

__all__ = ["api", "api_settings"]  # the API fixtures, for the tests without a browser

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = PROJECT_ROOT / "artifacts" / "screenshots"
# The flags this machine needs: no background connections (the network is closed), no GPU.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT: ViewportSize = {"width": 1366, "height": 860}  # a laptop screen


@dataclass(frozen=True)
class Stack:
    """A running local stack: API URL, admin key, emulator URL and its settings file."""

    api_url: str
    admin_key: str
    emulator_url: str
    env_file: Path


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Redis, Azurite, the emulator, the API and two workers, stopped after the module."""
    dev = DevStack(tmp_path_factory.mktemp("stack"))
    try:
        env = dev.up(workers=2)
        yield Stack(
            env["RETRAINQ_API_URL"],
            env["RETRAINQ_API_KEY"],
            env["RETRAINQ_EMULATOR_URL"],
            dev.env_file,
        )
    finally:
        dev.down()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP session for the API, the emulator and RRS."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
        yield http


@pytest.fixture
def admin(stack: Stack, session: aiohttp.ClientSession) -> ApiClient:
    """The API client with the admin key."""
    return ApiClient(stack.api_url, SecretStr(stack.admin_key), session)


@pytest.fixture
def scorer(stack: Stack, session: aiohttp.ClientSession, admin: ApiClient) -> Demo:
    """The demo's helpers: emulator settings and scoring through a tenant's own endpoint."""
    settings = WorkerSettings(_env_file=stack.env_file)
    console = Console(file=io.StringIO())
    return Demo(admin, session, settings, stack.emulator_url, console)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """Headless Debian Chromium driven by Playwright (a fresh profile each time)."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"no {CHROMIUM}: run 'make browser-deps' (as root it installs Chromium)")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            await launched.close()
