"""deploy/redis.conf: AOF everysec, no eviction, and a real redis-server accepts the file."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.deploy.support import DEPLOY

REDIS_CONF = DEPLOY / "redis.conf"


def directives() -> dict[str, list[str]]:
    """Directive name -> arguments of its last occurrence."""
    result: dict[str, list[str]] = {}
    for line in REDIS_CONF.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, *args = shlex.split(line)
            result[name.lower()] = args
    return result


def _answers(client: redis.Redis) -> bool:
    """Whether the server answers a PING yet."""
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


@pytest.fixture
def server(tmp_path: Path) -> Iterator[redis.Redis]:
    """redis-server started with deploy/redis.conf on a private unix socket (no TCP port)."""
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not Path(binary).exists():
        pytest.fail("redis-server is required (apt-get install redis-server)")
    socket = tmp_path / "redis.sock"
    process = subprocess.Popen(
        [binary, str(REDIS_CONF), "--port", "0", "--unixsocket", str(socket)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    client = redis.Redis(unix_socket_path=str(socket), decode_responses=True)
    try:
        deadline = time.monotonic() + 10
        # The socket file appears when Redis binds it, a moment before it accepts: wait for
        # an answer, not for the file.
        while not _answers(client):
            if process.poll() is not None:
                output, _ = process.communicate()
                pytest.fail(f"redis-server rejected deploy/redis.conf:\n{output}")
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.02)
        yield client
    finally:
        client.close()
        process.terminate()
        process.wait(timeout=10)


def test_durability_and_memory_directives() -> None:
    """AOF on with fsync every second, RDB snapshots off, and no eviction of queue keys."""
    conf = directives()
    assert conf["appendonly"] == ["yes"]
    assert conf["appendfsync"] == ["everysec"]
    assert conf["save"] == [""]
    assert conf["maxmemory-policy"] == ["noeviction"]


def test_fsync_policies_are_explained() -> None:
    """The file says what always, everysec and no can lose."""
    text = REDIS_CONF.read_text()
    for policy in ("appendfsync always", "appendfsync everysec", "appendfsync no"):
        assert f"#   {policy}" in text, policy


def test_redis_server_runs_with_the_file(server: redis.Redis) -> None:
    """A real redis-server loads the file and reports the intended settings."""
    assert server.config_get("appendonly") == {"appendonly": "yes"}
    assert server.config_get("appendfsync") == {"appendfsync": "everysec"}
    assert server.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
    assert server.config_get("save") == {"save": ""}
    server.set("probe", "1")
    persistence = server.info("persistence")
    assert isinstance(persistence, dict)
    assert persistence["aof_enabled"] == 1
