"""deploy/docker/Dockerfile and .dockerignore: slim, multi-stage, pinned, non-root, exec form."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from tests.deploy.support import DEPLOY, REPO, console_scripts

DOCKERFILE = DEPLOY / "docker" / "Dockerfile"


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction with its arguments (continuation lines joined)."""

    keyword: str
    args: str


def instructions() -> list[Instruction]:
    """The Dockerfile's instructions, comments dropped and continuations joined."""
    joined = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    result = []
    for line in joined.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        keyword, _, args = stripped.partition(" ")
        result.append(Instruction(keyword.upper(), args.strip()))
    return result


def stages() -> list[list[Instruction]]:
    """Instructions grouped by build stage (each starts with FROM)."""
    groups: list[list[Instruction]] = []
    for instruction in instructions():
        if instruction.keyword == "FROM":
            groups.append([])
        if groups:
            groups[-1].append(instruction)
    return groups


def base_image() -> str:
    """The image every stage builds on (an ARG default, or FROM's argument)."""
    args = {
        i.args.split("=", 1)[0]: i.args.split("=", 1)[1]
        for i in instructions()
        if i.keyword == "ARG" and "=" in i.args
    }
    images = {
        re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], s[0].args.split()[0]) for s in stages()
    }
    assert len(images) == 1, images
    return images.pop()


def test_multi_stage_build_on_python_311_slim() -> None:
    """A build stage and a runtime stage, both on python:3.11-slim."""
    assert base_image() == "python:3.11-slim"
    assert len(stages()) >= 2
    final = stages()[-1]
    assert any(i.keyword == "COPY" and i.args.startswith("--from=") for i in final)


def test_dependencies_are_pinned_and_dev_extras_left_out() -> None:
    """constraints.txt is copied and every pip install/wheel uses it; no [dev] extra."""
    build = stages()[0]
    assert any(i.keyword == "COPY" and "constraints.txt" in i.args.split() for i in build)
    runs = " ".join(i.args for i in instructions() if i.keyword == "RUN")
    pip_calls = re.findall(r"pip (?:install|wheel)[^&]*", runs)
    assert pip_calls
    for call in pip_calls:
        assert re.search(r"(--constraint|-c) constraints\.txt", call), call
    assert "[dev]" not in runs
    assert ".[" not in runs, "no optional extras in the image"


def test_runtime_stage_runs_as_non_root_user() -> None:
    """The last USER of the runtime stage is uid 10001, never root."""
    users = [i.args for i in stages()[-1] if i.keyword == "USER"]
    assert users, "the runtime stage sets no USER"
    user = users[-1].split(":")[0]
    assert user == "10001"


def test_entrypoint_and_cmd_use_exec_form_with_a_console_script() -> None:
    """CMD/ENTRYPOINT are JSON arrays (PID 1 receives SIGTERM) naming a console script."""
    final = [i for i in stages()[-1] if i.keyword in ("CMD", "ENTRYPOINT")]
    assert final
    for instruction in final:
        argv = json.loads(instruction.args)
        assert isinstance(argv, list)
        assert argv
        assert argv[0] in console_scripts()


def test_copied_sources_exist_and_are_not_ignored() -> None:
    """Every path the build copies from the context exists and .dockerignore keeps it, while
    the virtualenv, node_modules, .git and the local stack stay out of the context."""
    ignored = {
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv", "node_modules", ".stack", ".env"} <= ignored
    for instruction in instructions():
        if instruction.keyword != "COPY" or instruction.args.startswith("--from="):
            continue
        for source in instruction.args.split()[:-1]:
            assert (REPO / source).exists(), source
            assert source.rstrip("/") not in ignored, source
