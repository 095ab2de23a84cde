"""What a verb module gives the `gatewayd` parser: a ``register`` that adds its subcommand.

Each verb of the command line lives in one module of this package. Its ``register`` adds the
verb's subparser, with every option and help text, and sets the ``handler`` default that
`gatewayd.cli.main` calls with the parsed arguments; the handler returns the exit code.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Protocol, TypeAlias

__all__ = ["Handler", "Subparsers", "Verb"]

# argparse does not export the type of what add_subparsers() returns.
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
Handler: TypeAlias = Callable[[argparse.Namespace], int]


class Verb(Protocol):
    """A verb module, as `gatewayd.cli.main` lists it."""

    def register(self, subparsers: Subparsers) -> None: ...
