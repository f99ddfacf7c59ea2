"""Where the CLI writes: data on stdout (a table, JSON or JSON lines), everything else on stderr.

Scripts can pipe stdout straight into ``jq``: progress bars, notes and errors never reach it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, TextIO, TypeVar

from pydantic import BaseModel, TypeAdapter
from rich.console import Console

Mode = Literal["table", "json", "jsonl"]
MODES: tuple[Mode, ...] = ("table", "json", "jsonl")
M = TypeVar("M", bound=BaseModel)
PIPE_WIDTH = 1000  # tables fit their content; this only bounds a table with huge cells


def _stdout() -> TextIO:
    return sys.stdout


def _stderr() -> TextIO:
    return sys.stderr


@dataclass
class Output:
    """The chosen output mode and the two streams (looked up late, so tests can capture them)."""

    mode: Mode = "table"
    stdout: Callable[[], TextIO] = field(default=_stdout, repr=False)
    stderr: Callable[[], TextIO] = field(default=_stderr, repr=False)

    @property
    def console(self) -> Console:
        """A console on stdout for tables: plain and as wide as its rows when stdout is not a
        terminal, so that a pipe or a file gets whole ids instead of cut columns."""
        stream = self.stdout()
        width = None if stream.isatty() else PIPE_WIDTH
        return Console(file=stream, soft_wrap=True, highlight=False, width=width)

    @property
    def err(self) -> Console:
        """A console on stderr for progress and notes."""
        return Console(file=self.stderr(), soft_wrap=True, highlight=False)

    @property
    def interactive(self) -> bool:
        """Whether stderr is a terminal (live progress bars) rather than a log or a pipe."""
        return self.stderr().isatty()

    def note(self, text: str) -> None:
        """A line for the person at the terminal (stderr)."""
        print(text, file=self.stderr(), flush=True)

    def line(self, text: str) -> None:
        """One line of data in table mode (stdout)."""
        print(text, file=self.stdout(), flush=True)

    def show(self, value: M, table: Callable[[Console, M], None]) -> None:
        """One answer: ``table(console, value)``, or the value as JSON (one line in jsonl)."""
        if self.mode == "table":
            table(self.console, value)
        else:
            self.line(value.model_dump_json(indent=2 if self.mode == "json" else None))

    def show_page(
        self, page: BaseModel, items: Sequence[M], table: Callable[[Console, Sequence[M]], None]
    ) -> None:
        """A listing: a table of ``items``, the whole ``page`` as JSON, or a JSON line per item."""
        if self.mode == "table":
            table(self.console, items)
        elif self.mode == "json":
            self.line(page.model_dump_json(indent=2))
        else:
            for item in items:
                self.line(item.model_dump_json())

    def show_value(self, value: object) -> None:
        """Any JSON-able value in the JSON modes (lists become lines in jsonl)."""
        adapter: TypeAdapter[object] = TypeAdapter(object)
        if self.mode == "jsonl" and isinstance(value, list):
            for item in value:
                self.line(adapter.dump_json(item).decode())
        elif self.mode == "jsonl":
            self.line(adapter.dump_json(value).decode())
        else:
            self.line(adapter.dump_json(value, indent=2).decode())
