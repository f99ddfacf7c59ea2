"""Citations resolve: every section of docs/PROTOCOL.md the code cites is one of its headings,
and every document the README and docs/ name exists."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PROTOCOL = REPO / "docs" / "PROTOCOL.md"
CODE_DIRS = ("worker", "producer", "emulator", "tests", "bench", "deploy")
SKIP_DIRS = frozenset({"__pycache__", "node_modules", ".venv", ".git"})
SELF = Path(__file__).resolve()  # its own examples cite nothing
# A line that cites the classic protocol document (not a differently named one, e.g. a v2 doc).
CITING = re.compile(r"\bPROTOCOL(?:\.md)?\)?\s*\(?§")
SECTION = re.compile(r"§\s*(\d+(?:\.\d+)*)(?:\s*[-\u2013]\s*(\d+(?:\.\d+)*))?")
HEADING = re.compile(r"^#{2,4}\s+§?(\d+(?:\.\d+)*)\.?\s", re.MULTILINE)
MD_LINK = re.compile(r"\[[^\]]*\]\(([^)\s#]+\.md)(?:#[^)]*)?\)")
MD_NAME = re.compile(r"(?<![\w/.:-])((?:[\w.-]+/)*[A-Z][A-Z0-9_-]*\.md)\b")


def _files(*suffixes: str) -> Iterator[Path]:
    for top in CODE_DIRS:
        for path in sorted((REPO / top).rglob("*")):
            skipped = path == SELF or set(path.relative_to(REPO).parts) & SKIP_DIRS
            if path.suffix in suffixes and path.is_file() and not skipped:
                yield path
    for path in (REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))):
        if path.suffix in suffixes and path != PROTOCOL:
            yield path


def sections(text: str) -> set[str]:
    """The section numbers ``§n``, ``§n.m`` and ranges ``§n-m`` in ``text`` names."""
    found: set[str] = set()
    for first, last in SECTION.findall(text):
        found.add(first)
        if last:
            found.add(last)
            if first.isdigit() and last.isdigit():
                found |= {str(n) for n in range(int(first), int(last) + 1)}
    return found


def citations() -> list[tuple[str, str]]:
    """(``path:line``, section) for every protocol section cited outside docs/PROTOCOL.md."""
    cited = []
    for path in _files(".py", ".md"):
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if CITING.search(line):
                where = f"{path.relative_to(REPO)}:{number}"
                cited += [(where, section) for section in sorted(sections(line))]
    return cited


def protocol_text() -> str:
    """docs/PROTOCOL.md (the test fails, not errors, when it is missing)."""
    if not PROTOCOL.exists():
        pytest.fail("docs/PROTOCOL.md is missing")
    return PROTOCOL.read_text()


def headings() -> list[str]:
    """Section numbers of docs/PROTOCOL.md's numbered headings, in order."""
    return HEADING.findall(protocol_text())


def test_sections_parse_numbers_subsections_and_ranges() -> None:
    """``§2-3`` names 2 and 3, ``§2.3`` names 2.3, and an unnumbered ``§n`` names nothing."""
    assert sections("see PROTOCOL.md §2-3 and §5.4") == {"2", "3", "5.4"}
    assert sections("PROTOCOL §2\u20134") == {"2", "3", "4"}
    assert sections("code cites PROTOCOL §n") == set()


def test_the_code_cites_the_protocol() -> None:
    """The scan finds the citations the clients and the emulator carry (it can fail)."""
    cited = {where.split(":")[0] for where, _ in citations()}
    assert {"worker/azureml/bes.py", "worker/azureml/errors.py", "emulator/bes.py"} <= cited


def test_every_cited_protocol_section_is_a_heading() -> None:
    """Each ``PROTOCOL §n`` in code, tests and docs names a numbered heading of PROTOCOL.md."""
    known = set(headings())
    missing = [
        f"{where} cites §{section}" for where, section in citations() if section not in known
    ]
    assert missing == []


def test_protocol_sections_are_numbered_once_and_refer_within() -> None:
    """Heading numbers are unique, and each ``§n`` inside PROTOCOL.md names one of them."""
    numbers = headings()
    assert numbers, "docs/PROTOCOL.md has no numbered headings"
    assert sorted(n for n in set(numbers) if numbers.count(n) > 1) == []
    dangling = sorted(sections(protocol_text()) - set(numbers))
    assert dangling == []


def named_documents(path: Path) -> set[str]:
    """Markdown files ``path`` links to or names (``docs/X.md``, ``X.md``, ``[t](x.md)``)."""
    text = path.read_text()
    return set(MD_LINK.findall(text)) | set(MD_NAME.findall(text))


def resolves(name: str, source: Path) -> bool:
    """Whether ``name``, relative to the naming file's folder or to the repository, exists."""
    return (source.parent / name).is_file() or (REPO / name).is_file()


def test_every_document_the_docs_name_exists() -> None:
    """README.md and docs/*.md link to or name only Markdown files the repository has."""
    sources = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    named = {(source, name) for source in sources for name in named_documents(source)}
    assert any(name.endswith("OPERATIONS.md") for _, name in named)
    missing = sorted(
        f"{source.relative_to(REPO)} names {name}"
        for source, name in named
        if not resolves(name, source)
    )
    assert missing == []
