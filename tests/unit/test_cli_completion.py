"""``retrainq completion bash`` completes commands and options from the parser itself."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from producer.cli.completion import bash_script, command_words
from producer.cli.main import build_parser


def complete(script: Path, *words: str) -> list[str]:
    """What bash offers after ``retrainq WORDS`` (the last word is being typed)."""
    line = " ".join(f"'{w}'" for w in ("retrainq", *words))
    program = (
        f"source {script}; COMP_WORDS=({line}); COMP_CWORD={len(words)}; _retrainq; "
        'printf "%s\\n" "${COMPREPLY[@]}"'
    )
    done = subprocess.run(["bash", "-c", program], capture_output=True, text=True, check=True)
    return done.stdout.split()


@pytest.fixture(scope="module")
def script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The generated script in a file."""
    path = tmp_path_factory.mktemp("completion") / "retrainq.bash"
    path.write_text(bash_script(build_parser()))
    return path


def test_every_command_path_is_known() -> None:
    """Groups list their actions; leaves list their options."""
    words = command_words(build_parser())
    assert {"runs", "batches", "tenants", "doctor", "completion"} <= set(words["_"])
    assert {"list", "show", "cancel"} <= set(words["_ runs"])
    assert {"--state", "--tenant", "--since", "-o"} <= set(words["_ runs list"])


@pytest.mark.parametrize(
    ("typed", "offered"),
    [
        (("ba",), ["batches"]),
        (("batches", "re"), ["retry-failed"]),
        (("runs", "list", "--st"), ["--state"]),
        (("runs", "list", "--state", "failed", "--ten"), ["--tenant"]),
        (("-o", "json", "tenants", "im"), ["import"]),
    ],
)
def test_bash_completes_what_was_typed(
    script: Path, typed: tuple[str, ...], offered: list[str]
) -> None:
    """Bash offers the matching command or option at any depth, past options and values."""
    assert complete(script, *typed) == offered
