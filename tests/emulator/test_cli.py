"""The ``retrainq-emulator`` command: help, print-config, env/flag precedence, gen-data, serving."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from emulator.app import main
from emulator.config import default_config
from emulator.datagen import bike_rental_csv
from producer.devtools.processes import ManagedProcess


@dataclass(frozen=True)
class Result:
    """What one command line did: exit code and output."""

    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[..., Result]:
    """Run ``retrainq-emulator`` in this process (argparse's exits included) on a clean
    environment; the console script itself serves in the last test."""
    for name in os.environ:
        if name.startswith("RETRAINQ_EMULATOR_"):
            monkeypatch.delenv(name)

    def run(*args: str, env: dict[str, str] | None = None) -> Result:
        capsys.readouterr()
        with monkeypatch.context() as scoped:
            for name, value in (env or {}).items():
                scoped.setenv(name, value)
            try:
                code = main(list(args))
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
        out, err = capsys.readouterr()
        return Result(code, out, err)

    return run


def test_help_exits_zero(run: Callable[..., Result]) -> None:
    """--help documents the flags and exits 0."""
    result = run("--help")
    assert result.returncode == 0
    for flag in ("--host", "--port", "--config", "--print-config", "--seed", "--public-url"):
        assert flag in result.stdout


def test_print_config_env_and_flags(run: Callable[..., Result]) -> None:
    """--print-config prints the default config with secrets; flags beat environment variables."""
    result = run("--print-config", env={"RETRAINQ_EMULATOR_PORT": "9911"})
    doc = json.loads(result.stdout)
    assert doc["public_url"] == "http://127.0.0.1:9911"
    assert doc["workspaces"][0]["authorization_token"] == (
        default_config().workspaces[0].authorization_token
    )
    result = run("--print-config", "--port", "9912", env={"RETRAINQ_EMULATOR_PORT": "9911"})
    assert json.loads(result.stdout)["public_url"] == "http://127.0.0.1:9912"
    result = run("--print-config", "--public-url", "http://emulator:8090/")
    assert json.loads(result.stdout)["public_url"] == "http://emulator:8090"


def test_config_file(tmp_path: Path, run: Callable[..., Result]) -> None:
    """--config loads another config; an invalid one exits 2 with a message."""
    config = default_config(training_endpoints=3)
    path = tmp_path / "emulator.json"
    path.write_text(config.model_dump_json())
    doc = json.loads(run("--config", str(path), "--print-config").stdout)
    training = doc["workspaces"][0]["web_services"][0]
    assert [e["name"] for e in training["endpoints"]] == ["default", "bes2", "bes3"]
    path.write_text('{"models": []}')
    result = run("--config", str(path))
    assert result.returncode == 2
    assert "invalid configuration" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_invalid_settings_are_one_line(run: Callable[..., Result]) -> None:
    """A setting out of range stops the emulator with one line naming it (exit 2)."""
    result = run("--port", "-1", "--print-config")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("retrainq-emulator: invalid configuration: port: ")


def test_gen_data_is_deterministic_per_tenant(tmp_path: Path, run: Callable[..., Result]) -> None:
    """gen-data writes the same CSV as the datagen module, different per tenant and drift."""
    out = tmp_path / "a.csv"
    assert (
        run(
            "gen-data", "--tenant", "loc1", "--rows", "50", "--seed", "3", "--out", str(out)
        ).returncode
        == 0
    )
    assert out.read_text() == bike_rental_csv("loc1", 50, seed=3)
    drifted = run("gen-data", "--tenant", "loc1", "--rows", "50", "--seed", "3", "--drift").stdout
    other = run("gen-data", "--tenant", "loc2", "--rows", "50", "--seed", "3").stdout
    assert len({out.read_text(), drifted, other}) == 3


@pytest.mark.parametrize("rows", ["0", "-5", "many"])
def test_gen_data_rows_must_be_a_positive_whole_number(
    tmp_path: Path, rows: str, run: Callable[..., Result]
) -> None:
    """--rows below 1 or not a number is a usage error (exit 2) and writes no file."""
    out = tmp_path / "x.csv"
    result = run("gen-data", "--tenant", "x", "--rows", rows, "--out", str(out))
    assert result.returncode == 2
    assert "argument --rows:" in result.stderr
    assert not out.exists()


@pytest.mark.parametrize("out", ["missing/dir/x.csv", "."])
def test_gen_data_unwritable_out_is_a_one_line_error(
    tmp_path: Path, out: str, run: Callable[..., Result]
) -> None:
    """A --out that cannot be written exits 2 with one line on stderr, not a traceback."""
    result = run("gen-data", "--tenant", "x", "--rows", "10", "--out", str(tmp_path / out))
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith(f"retrainq-emulator: cannot write {tmp_path / out}: ")


async def test_subprocess_serves_config_and_logs_json(
    emulator: ManagedProcess, emulator_url: str
) -> None:
    """The console script serves every surface on one port and logs JSON lines."""
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{emulator_url}/_emulator/health") as response:
            assert response.status == 200
        async with http.get(f"{emulator_url}/_emulator/config") as response:
            config = await response.json()
    assert config["seed"] == 7
    assert config["public_url"] == emulator_url
    assert config["settings"]["min_job_seconds"] == 0
    first = emulator.log_path.read_text().splitlines()[0]
    assert json.loads(first)["event"] == "emulator.started"
