"""The ``retrainq`` API commands against the real API on loopback, and errors caught before it."""

from __future__ import annotations

import argparse
import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from producer.cli.commands import CommandError, cli_settings
from producer.cli.main import main
from producer.devtools.devstack import write_env_file
from producer.devtools.processes import free_port
from tests.integration.conftest_api import ADMIN_KEY, CSV, ApiTestClient
from tests.runs import put_in_state
from worker.schemas import TENANT_ID_PATTERN, RunState
from worker.store import Store


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No .env of the developer's and no API settings from their environment."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RETRAINQ_API_URL", raising=False)
    monkeypatch.setenv("RETRAINQ_API_KEY", "")


UNUSED_URL = "http://127.0.0.1:9"  # never contacted: these commands fail before any request


async def cli(api: ApiTestClient, *argv: str, key: str = ADMIN_KEY) -> int:
    """Run ``retrainq ARGV`` in a thread (it has its own event loop) against ``api``."""
    url = str(api.make_url("/"))
    return await asyncio.to_thread(main, [*argv, "--api-url", url, "--api-key", key])


async def test_onboard_upload_retrain_show(
    api: ApiTestClient, capsys: pytest.CaptureFixture[str], tmp_path: Path
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
    api: ApiTestClient, capsys: pytest.CaptureFixture[str]
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
        await put_in_state(store, run, state, due_in=None)


@pytest.mark.parametrize(
    ("states", "code"),
    [
        ([RunState.SUCCEEDED, RunState.SUCCEEDED, RunState.REJECTED], 0),
        ([RunState.SUCCEEDED, RunState.FAILED, RunState.SUCCEEDED], 1),
    ],
)
async def test_bulk_then_watch_to_completion(
    api: ApiTestClient,
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
    assert f"batch       {batch_id}" in out
    assert "3/3 (100%)" in out


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


def error_line(capsys: pytest.CaptureFixture[str]) -> str:
    """The one line the CLI wrote to stderr (fails on a traceback or several lines)."""
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_invalid_arguments_name_each_field_and_the_pattern(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A request the CLI cannot build lists every bad field with pydantic's message, on one line."""
    argv = ["tenants", "create", "BAD_ID!", "--classic", "ws1:model", "--data-path", "/abs"]
    assert main([*argv, "--api-url", UNUSED_URL, "--api-key", "k"]) == 2
    line = error_line(capsys)
    assert line.startswith("retrainq: invalid TenantCreate: id: String should match pattern ")
    assert f"'{TENANT_ID_PATTERN}'" in line
    assert "; data_path: String should match pattern" in line


@pytest.mark.parametrize(
    ("flag", "value"), [("--api-key", ""), ("--api-key", "  "), ("--api-url", "")]
)
def test_blank_api_flags_are_errors(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, flag: str, value: str
) -> None:
    """An explicitly empty --api-key/--api-url is an error, not a fall back to the settings."""
    monkeypatch.setenv("RETRAINQ_API_KEY", "configured-key")
    flags = {"--api-url": UNUSED_URL, "--api-key": "k", flag: value}
    assert main(["tenants", "list", *(part for pair in flags.items() for part in pair)]) == 2
    assert error_line(capsys) == f"retrainq: {flag} is empty"


@pytest.mark.parametrize("url", ["notaurl", "ftp://host", "http://", "http://host:99999"])
def test_invalid_api_url_flag(capsys: pytest.CaptureFixture[str], url: str) -> None:
    """--api-url must be http(s)://host[:port]; anything else is named before any request."""
    assert main(["retrain", "x", "--api-url", url, "--api-key", "k"]) == 2
    assert error_line(capsys) == (
        f"retrainq: invalid API URL {url!r}: expected http(s)://host[:port]"
    )


@pytest.mark.parametrize("source", ["environment", ".env", ".stack/env"])
def test_invalid_api_url_from_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str
) -> None:
    """The URL is checked wherever it came from: environment, ``.env`` or ``.stack/env``."""
    state_dir = tmp_path / "stack"
    if source == "environment":
        monkeypatch.setenv("RETRAINQ_API_URL", "notaurl")
    elif source == ".env":
        write_env_file(tmp_path / ".env", {"RETRAINQ_API_URL": "notaurl"})
    else:
        write_env_file(state_dir / "env", {"RETRAINQ_API_URL": "notaurl"})
    args = argparse.Namespace(api_url=None, api_key="k")
    with pytest.raises(CommandError, match=r"^invalid API URL 'notaurl': expected http"):
        cli_settings(args, state_dir=state_dir)


@pytest.mark.parametrize("tenants", [[], ["t1"]])
def test_bulk_kind_needs_all(capsys: pytest.CaptureFixture[str], tenants: list[str]) -> None:
    """``bulk --kind`` without --all says that --kind needs --all."""
    argv = ["bulk", *tenants, "--kind", "new", "--api-url", UNUSED_URL, "--api-key", "k"]
    assert main(argv) == 2
    assert error_line(capsys) == "retrainq: --kind needs --all"


@pytest.fixture
def silent_url() -> Iterator[str]:
    """A URL whose server accepts connections and never answers."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield f"http://127.0.0.1:{server.getsockname()[1]}"


def test_timeout_is_one_line(capsys: pytest.CaptureFixture[str], silent_url: str) -> None:
    """An API that never answers ends in a one-line 'timed out' error, exit 2."""
    argv = ["tenants", "list", "--api-url", silent_url, "--api-key", "k"]
    assert main([*argv, "--timeout-seconds", "0.2"]) == 2
    assert (
        error_line(capsys) == f"retrainq: timed out after 0.2s waiting for the API at {silent_url}"
    )


async def test_bulk_notes_and_exit_1_when_nothing_started(
    api: ApiTestClient, capsys: pytest.CaptureFixture[str]
) -> None:
    """bulk counts in good English and exits 1 (batch id still printed) when it started nothing."""
    assert await cli(api, "tenants", "create", "t1", "--new", "tmpl", "--no-train") == 0
    capsys.readouterr()
    assert await cli(api, "bulk", "t1", "nosuch") == 0
    captured = capsys.readouterr()
    assert captured.out.strip()
    assert captured.err == "1 run queued; unknown tenants: nosuch\n"
    assert await cli(api, "bulk", "t1") == 0
    assert capsys.readouterr().err == "0 runs queued; 1 tenant already running (coalesced)\n"
    assert await cli(api, "bulk", "nosuch") == 1
    captured = capsys.readouterr()
    assert len(captured.out.split()) == 1
    assert captured.err == "0 runs queued; unknown tenants: nosuch\n"
    assert await cli(api, "bulk", "nosuch", "--json") == 1
    captured = capsys.readouterr()
    assert '"not_found": [' in captured.out
    assert captured.err == "0 runs queued; unknown tenants: nosuch\n"


async def test_create_without_data_says_how_to_start_the_first_run(
    api: ApiTestClient, capsys: pytest.CaptureFixture[str]
) -> None:
    """No first run for lack of data is explained (exit 0); with --no-train nothing is said."""
    assert await cli(api, "tenants", "create", "t6", "--classic", "ws1:model") == 0
    captured = capsys.readouterr()
    assert "first run " not in captured.out
    assert captured.err == (
        "no first run: the tenant has no training data yet; upload it with "
        "'retrainq data upload t6 FILE', then 'retrainq retrain t6'\n"
    )
    assert await cli(api, "tenants", "create", "t7", "--classic", "ws1:model", "--no-train") == 0
    assert "no first run" not in capsys.readouterr().err
