"""Real services for the tests: a private redis-server, Azurite, and clients to them.

Session fixtures are synchronous and own the processes (pytest-asyncio cannot share an event
loop between a session-scoped async fixture and function-scoped tests); function-scoped async
fixtures open clients and flush state between tests.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from producer.devtools.processes import (
    ManagedProcess,
    azurite_argv,
    azurite_connection_string,
    console_script,
    ensure_azurite,
    ensure_redis_server,
    free_port,
    redis_argv,
    redis_ready,
)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ManagedProcess]:
    """A redis-server of our own on a free port (AOF on, so restart tests keep data)."""
    data_dir = tmp_path_factory.mktemp("redis")
    port = free_port()
    server = ManagedProcess(
        name="redis-server",
        argv=redis_argv(ensure_redis_server(), port, data_dir, aof=True),
        port=port,
        log_path=data_dir / "redis.log",
        ready=redis_ready,
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_url(redis_server: ManagedProcess) -> str:
    """URL of the test redis-server (database 0)."""
    return f"redis://127.0.0.1:{redis_server.port}/0"


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """A client to the test redis-server, flushed before each test."""
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    await client.flushdb()
    yield client
    await client.aclose()


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ManagedProcess]:
    """Azurite's blob service, in memory, on a free port."""
    log_dir: Path = tmp_path_factory.mktemp("azurite")
    port = free_port()
    server = ManagedProcess(
        name="azurite",
        argv=azurite_argv(ensure_azurite(), port),
        port=port,
        log_path=log_dir / "azurite.log",
    )
    server.start(timeout=60)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def blob_connection_string(azurite: ManagedProcess) -> str:
    """Connection string of Azurite's development account."""
    return azurite_connection_string(azurite.port)


@pytest.fixture(scope="session")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ManagedProcess]:
    """The Azure ML (classic) emulator as a subprocess on a free port, default config.

    Training jobs take no minimum time and ARM provisioning settles fast so tests run quickly;
    tests that need other settings change them through ``/_emulator/`` admin calls.
    """
    log_dir: Path = tmp_path_factory.mktemp("emulator")
    port = free_port()
    server = ManagedProcess(
        name="emulator",
        argv=[
            console_script("retrainq-emulator"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--seed",
            "7",
        ],
        port=port,
        log_path=log_dir / "emulator.log",
        env={"RETRAINQ_EMULATOR_LOG_FORMAT": "json"},
    )
    server.start(timeout=60)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def emulator_url(emulator: ManagedProcess) -> str:
    """Base URL of the emulator (all Azure ML surfaces share it)."""
    return f"http://127.0.0.1:{emulator.port}"
