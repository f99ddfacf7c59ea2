"""The ``retrainq`` API commands against the real API served on loopback (real Redis, Azurite)."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient

from producer.cli import main
from producer.commands import cli_settings
from producer.devstack import write_env_file
from producer.processes import free_port
from tests.integration.conftest_api import ADMIN_KEY, CSV
from worker.schemas import RunState
from worker.store import Store


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No .env of the developer's and no API settings from their environment."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RETRAINQ_API_URL", raising=False)
    monkeypatch.setenv("RETRAINQ_API_KEY", "")


async def cli(api: TestClient, *argv: str, key: str = ADMIN_KEY) -> int:
    """Run ``retrainq ARGV`` in a thread (it has its own event loop) against ``api``."""
    url = str(api.make_url("/"))
    return await asyncio.to_thread(main, [*argv, "--api-url", url, "--api-key", key])


async def test_onboard_upload_retrain_show(
    api: TestClient, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """tenants create/list/show, data upload, retrain and runs show print what happened."""
    assert await cli(api, "tenants", "create", "acme", "--classic", "ws1:model", "--name", "A") == 0
    out = capsys.readouterr().out
    assert "api key   rtq_" in out
    assert await cli(api, "tenants", "list") == 0
    assert "acme" in capsys.readouterr().out
    csv_file = tmp_path / "train.csv"
    csv_file.write_bytes(CSV)
    assert await cli(api, "data", "upload", "acme", str(csv_file)) == 0
    assert "data version 1" in capsys.readouterr().out
    assert await cli(api, "tenants", "show", "acme", "--json") == 0
    assert '"data_version": 1' in capsys.readouterr().out
    assert await cli(api, "retrain", "acme") == 0
    run_id = capsys.readouterr().out.split()[1]
    assert await cli(api, "runs", "show", run_id) == 0
    shown = capsys.readouterr().out
    assert "queued" in shown
    assert "acme" in shown


async def test_errors_are_one_line_and_non_zero(
    api: TestClient, capsys: pytest.CaptureFixture[str]
) -> None:
    """API errors, unreachable APIs and missing keys exit non-zero without a traceback."""
    assert await cli(api, "retrain", "ghost") == 1
    err = capsys.readouterr().err
    assert err.strip() == "retrainq: 404 Not Found: no tenant 'ghost'"
    assert await cli(api, "tenants", "list", key="wrong") == 1
    assert "401" in capsys.readouterr().err
    dead = f"http://127.0.0.1:{free_port()}"
    code = await asyncio.to_thread(main, ["tenants", "list", "--api-url", dead, "--api-key", "k"])
    assert code == 2
    assert "cannot reach the API" in capsys.readouterr().err
    code = await asyncio.to_thread(main, ["tenants", "list", "--api-url", dead])
    assert code == 2
    err = capsys.readouterr().err
    assert "no API key" in err
    assert "Traceback" not in err


async def _finish(store: Store, run_ids: list[str], states: list[RunState]) -> None:
    for run_id, state in zip(run_ids, states, strict=True):
        await asyncio.sleep(0.2)
        run = await store.get_run(run_id)
        assert run is not None
        await store.save_run(run, state, due_in=None)


@pytest.mark.parametrize(
    ("states", "code"),
    [
        ([RunState.SUCCEEDED, RunState.SUCCEEDED, RunState.REJECTED], 0),
        ([RunState.SUCCEEDED, RunState.FAILED, RunState.SUCCEEDED], 1),
    ],
)
async def test_bulk_then_watch_to_completion(
    api: TestClient,
    redis: aioredis.Redis,
    capsys: pytest.CaptureFixture[str],
    states: list[RunState],
    code: int,
) -> None:
    """``bulk --all`` prints a batch id; ``watch`` follows it to the end (1 if a run failed)."""
    for tenant in ("t1", "t2", "t3"):
        assert await cli(api, "tenants", "create", tenant, "--new", "tmpl", "--no-train") == 0
    capsys.readouterr()
    assert await cli(api, "bulk", "--all") == 0
    batch_id = capsys.readouterr().out.strip()
    store = Store(redis)
    run_ids = await store.batch_run_ids(batch_id)
    assert len(run_ids) == 3
    finisher = asyncio.create_task(_finish(store, run_ids, states))
    assert await cli(api, "watch", batch_id, "--interval", "0.05") == code
    await finisher
    out = capsys.readouterr().out
    assert f"batch {batch_id} done" in out
    assert "3/3" in out


def test_settings_come_from_the_dev_stack_env_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without flags or environment, the CLI uses ``.stack/env`` of ``retrainq dev up``."""
    write_env_file(
        tmp_path / "env",
        {"RETRAINQ_API_URL": "http://127.0.0.1:9", "RETRAINQ_API_KEY": "from-stack"},
    )
    args = argparse.Namespace(api_url=None, api_key=None)
    monkeypatch.delenv("RETRAINQ_API_KEY")
    settings = cli_settings(args, state_dir=tmp_path)
    assert settings.api_url == "http://127.0.0.1:9"
    assert settings.api_key.get_secret_value() == "from-stack"
    flagged = cli_settings(argparse.Namespace(api_url="http://x", api_key="k"), state_dir=tmp_path)
    assert (flagged.api_url, flagged.api_key.get_secret_value()) == ("http://x", "k")
