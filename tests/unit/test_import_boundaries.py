"""The API, the CLI and the worker import without the emulator extra (scikit-learn, numpy) and
without the emulator package: the production image installs neither extra."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import textwrap
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# What the production image runs: retrainq-api, retrainq-worker and the retrainq CLI.
PRODUCTION_MODULES = ("producer.api.app", "producer.cli.main", "worker.main", "worker.runtime")
BLOCKED = ("sklearn", "numpy", "scipy", "emulator")
FIRST_PARTY = {"producer", "worker", "emulator", "tests", "bench"}

# Run in a fresh interpreter: a finder ahead of every other refuses the blocked top-level names,
# as if they were not installed, then each production module is imported.
PROBE = textwrap.dedent(
    """
    import importlib
    import sys

    BLOCKED = set(sys.argv[1].split(","))


    class Refuse:
        @staticmethod
        def find_spec(name, path=None, target=None):
            if name.partition(".")[0] in BLOCKED:
                raise ImportError(f"{name} is blocked (not installed in the production image)")
            return None


    sys.meta_path.insert(0, Refuse())
    for module in sys.argv[2:]:
        importlib.import_module(module)
    loaded = sorted(m for m in sys.modules if m.partition(".")[0] in BLOCKED)
    assert not loaded, loaded
    print("imported", *sys.argv[2:])
    """
)


def probe(*modules: str) -> subprocess.CompletedProcess[str]:
    """Import ``modules`` in a new interpreter with the blocked packages refused."""
    return subprocess.run(
        [sys.executable, "-c", PROBE, ",".join(BLOCKED), *modules],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("module", PRODUCTION_MODULES)
def test_production_modules_import_without_the_emulator_extra(module: str) -> None:
    """Each entry module of the production image imports with sklearn, numpy, scipy and the
    emulator package refused."""
    result = probe(module)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["imported", module]


def test_the_probe_refuses_what_it_blocks() -> None:
    """The finder really refuses: the emulator's training module cannot be imported."""
    result = probe("emulator.training")
    assert result.returncode != 0
    assert "blocked" in result.stderr


def third_party_imports(package: str) -> set[str]:
    """Top-level names of the non-stdlib, non-project modules that ``package`` imports."""
    names: set[str] = set()
    for path in (REPO / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name.partition(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.partition(".")[0])
    return names - FIRST_PARTY - set(sys.stdlib_module_names)


def requirement_names(requirements: list[str]) -> set[str]:
    """Normalised distribution names of PEP 508 requirement strings."""
    return {
        re.sub(r"[-_.]+", "-", re.split(r"[\[<>=~!; ]", r, maxsplit=1)[0]).lower()
        for r in requirements
    }


def test_what_only_the_emulator_imports_is_in_the_emulator_extra() -> None:
    """Every distribution that emulator/ imports and the API and the worker do not is in the
    emulator extra and not among the dependencies, so the production image leaves it out."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extra = requirement_names(project["optional-dependencies"]["emulator"])
    assert not extra & requirement_names(project["dependencies"])
    only_emulator = third_party_imports("emulator") - third_party_imports("producer")
    only_emulator -= third_party_imports("worker")
    distributions = packages_distributions()
    assert only_emulator, "the emulator has dependencies of its own"
    for module in sorted(only_emulator):
        provided = requirement_names(distributions.get(module, [module]))
        assert provided & extra, f"{module} ({provided}) is not in the emulator extra"
