"""``retrainq dev up --emulator-config FILE``: the stack's emulator serves the file's specs, the
worker settings name its training services, and a restart without the option keeps the file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from producer.cli.main import main
from producer.devtools.devstack import DevStack, fetch_emulator_config
from tests.custom_spec import FEATURES, write_custom_config

pytestmark = pytest.mark.timeout(300)


def test_the_stack_runs_the_emulator_config_it_was_given_and_keeps_it(tmp_path: Path) -> None:
    """up with the file, then down and up without it: both times the diabetes spec."""
    path = write_custom_config(tmp_path / "config")
    stack = DevStack(state_dir=tmp_path / "stack")
    try:
        for given in (path, None):
            env = stack.up(workers=0, emulator_config=given)
            assert "emulator" in stack.started
            served = fetch_emulator_config(env["RETRAINQ_EMULATOR_URL"])
            assert [m["name"] for m in served["models"]] == ["diabetes", "blank"]
            services = json.loads(env["RETRAINQ_TRAINING_SERVICES"])
            assert list(services) == ["default", "blank"]
            assert services["default"]["columns"] == [*FEATURES, "target"]
            stack.down()
    finally:
        stack.down()


def test_a_missing_emulator_config_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A file that does not exist exits 2 before anything starts."""
    missing = tmp_path / "nothing.json"
    assert main(["dev", "up", "--emulator-config", str(missing)]) == 2
    assert capsys.readouterr().err == f"retrainq: --emulator-config: no such file: {missing}\n"
