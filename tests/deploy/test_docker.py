"""deploy/docker/Dockerfile and .dockerignore: slim, multi-stage, pinned, non-root, exec form; a
production image without optional extras and an emulator image with the emulator extra."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from producer.devtools import image
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


def stage_name(stage: list[Instruction]) -> str:
    """The stage's ``AS`` name (``""`` when it has none)."""
    words = stage[0].args.split()
    return words[2] if len(words) == 3 and words[1].upper() == "AS" else ""


def chain(name: str | None = None) -> list[list[Instruction]]:
    """The stages an image target is built from, its first ancestor first; the last stage (what
    a build without ``--target`` makes) when ``name`` is None."""
    by_name = {stage_name(stage): stage for stage in stages()}
    stage = stages()[-1] if name is None else by_name[name]
    result = [stage]
    while (parent := stage[0].args.split()[0]) in by_name:
        stage = by_name[parent]
        result.insert(0, stage)
    return result


def target(name: str | None = None) -> list[Instruction]:
    """Every instruction that makes up an image target (see ``chain``)."""
    return [instruction for stage in chain(name) for instruction in stage]


def copied_stage(name: str | None = None) -> str:
    """The stage whose venv an image target copies (``COPY --from=<stage>``)."""
    sources = [
        i.args.split()[0].removeprefix("--from=")
        for i in target(name)
        if i.keyword == "COPY" and i.args.startswith("--from=")
    ]
    assert len(sources) == 1, sources
    return sources[0]


def base_image() -> str:
    """The image every stage builds on (an ARG default, or FROM's argument)."""
    args = {
        i.args.split("=", 1)[0]: i.args.split("=", 1)[1]
        for i in instructions()
        if i.keyword == "ARG" and "=" in i.args
    }
    images = {
        re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], c[0][0].args.split()[0])
        for c in (chain(stage_name(s) or None) for s in stages())
    }
    assert len(images) == 1, images
    return images.pop()


def pip_extras(name: str | None = None) -> set[str]:
    """Optional extras that the pip calls of an image target and of the stage it copies its
    venv from name (``.[x]`` or ``retrainq[x]``); asserts every call is pinned."""
    stages_used = [*chain(name), *chain(copied_stage(name))]
    runs = " ".join(i.args for stage in stages_used for i in stage if i.keyword == "RUN")
    pip_calls = re.findall(r"pip (?:install|wheel)[^&]*", runs)
    assert pip_calls
    for call in pip_calls:
        assert re.search(r"(--constraint|-c) constraints\.txt", call), call
    extras: set[str] = set()
    for listed in re.findall(r"(?:\.|retrainq)\[([\w,-]+)\]", runs):
        extras |= set(listed.split(","))
    return extras


def test_multi_stage_build_on_python_311_slim() -> None:
    """Build stages and runtime stages, all on python:3.11-slim; each image copies its venv."""
    assert base_image() == "python:3.11-slim"
    assert len(stages()) >= 2
    assert copied_stage() == "build"
    assert copied_stage("emulator") == "build-emulator"


def test_dependencies_are_pinned_and_extras_follow_the_image() -> None:
    """constraints.txt is copied and every pip install/wheel uses it; the production image (the
    default target) installs no optional extra, the emulator image only the emulator extra."""
    build = stages()[0]
    assert any(i.keyword == "COPY" and "constraints.txt" in i.args.split() for i in build)
    assert pip_extras() == set(), "no optional extras in the production image"
    assert pip_extras("emulator") == {"emulator"}


def test_runtime_images_run_as_non_root_user() -> None:
    """The last USER of each image target is uid 10001, never root."""
    for name in (None, "emulator"):
        users = [i.args for i in target(name) if i.keyword == "USER"]
        assert users, f"{name or 'production'} sets no USER"
        assert users[-1].split(":")[0] == "10001"


def test_entrypoint_and_cmd_use_exec_form_with_a_console_script() -> None:
    """CMD/ENTRYPOINT are JSON arrays (PID 1 receives SIGTERM) naming a console script; the
    emulator image runs retrainq-emulator unless told otherwise."""
    for name in (None, "emulator"):
        final = [i for i in target(name) if i.keyword in ("CMD", "ENTRYPOINT")]
        assert final
        for instruction in final:
            argv = json.loads(instruction.args)
            assert isinstance(argv, list)
            assert argv
            assert argv[0] in console_scripts()
    assert json.loads(final[-1].args) == ["retrainq-emulator"]


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


def test_pip_settings_of_the_builder_are_build_args_of_every_pip_stage() -> None:
    """Each stage that runs pip declares every PIP_* build arg `make image` may pass (a
    stage does not inherit the ARGs of the stage it starts from)."""
    names = {f"PIP_{key.upper().replace('-', '_')}" for key in image.PIP_KEYS}
    for stage in stages():
        runs_pip = any(i.keyword == "RUN" and "pip " in i.args for i in stage)
        declared = {
            word.split("=", 1)[0] for i in stage if i.keyword == "ARG" for word in i.args.split()
        }
        if runs_pip:
            assert names <= declared, (stage_name(stage), names - declared)


def test_host_pip_config_becomes_build_args_and_read_only_mounts(tmp_path: Path) -> None:
    """``pip config list`` lines (files, then PIP_* as :env:) turn into PIP_* build args, the
    environment overriding the files; local indexes are mounted from their root (their pages
    link to ../../files), wheel folders as they are, the CA bundle always; other settings
    (a host-wide constraint file) and remote URLs are not mounted."""
    (tmp_path / "pypi" / "simple").mkdir(parents=True)
    (tmp_path / "wheels").mkdir()
    ca = tmp_path / "ca.crt"
    ca.write_text("certs")
    lines = [
        f":env:.find-links='{tmp_path / 'wheels'}'",
        ":env:.default-timeout='180'",
        "global.find-links='/nowhere'",
        "global.constraint='/etc/xdg/pip/constraints.txt'",
        f"global.extra-index-url='file://{tmp_path}/pypi/simple https://mirror.example/simple'",
        "global.index-url='https://mirror.example/pypi/simple'",
    ]
    settings = image.pip_build_settings(lines, ca_bundle=ca)
    assert settings.build_args == {
        "PIP_FIND_LINKS": str(tmp_path / "wheels"),
        "PIP_DEFAULT_TIMEOUT": "180",
        "PIP_EXTRA_INDEX_URL": f"file://{tmp_path}/pypi/simple https://mirror.example/simple",
        "PIP_INDEX_URL": "https://mirror.example/pypi/simple",
    }
    assert settings.mounts == (ca, tmp_path / "pypi", tmp_path / "wheels")


def test_base_name_follows_its_recipe() -> None:
    """The debootstrap base is rebuilt when its packages change, reused otherwise."""
    assert image.base_name() == image.base_name()
    assert image.base_name() != image.base_name((*image.BASE_PACKAGES, "curl"))
    assert image.base_name().startswith(f"localhost/retrainq-base:{image.BASE_SUITE}-")
