"""What every CLI command shares: its signature, its error type and how it is registered."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol, TypeAlias

from producer.cli.client import ApiClient
from producer.cli.output import Output

Command = Callable[[ApiClient, Output, argparse.Namespace], Awaitable[int]]
if TYPE_CHECKING:  # argparse's action class is generic only to the type checker
    Subcommands: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]
else:
    Subcommands = argparse._SubParsersAction


class CommandError(Exception):
    """A command cannot run as asked (bad arguments, missing settings or files): exit 2."""


class Leaf(Protocol):
    """Registers one command: ``leaf(group, name, command, help)`` returns its parser."""

    def __call__(
        self, group: Subcommands, name: str, command: Command, help_: str
    ) -> argparse.ArgumentParser: ...


def group(subcommands: Subcommands, name: str, help_: str) -> Subcommands:
    """A command group such as ``runs`` whose actions are added to the returned object."""
    parser = subcommands.add_parser(name, help=help_, description=help_)
    return parser.add_subparsers(dest=f"{name}_command", required=True, metavar="ACTION")


def count(number: int, singular: str, plural: str) -> str:
    """``1 run``, ``2 runs``."""
    return f"{number} {singular if number == 1 else plural}"
