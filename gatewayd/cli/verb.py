"""What a verb module gives the `gatewayd` parser: a ``register`` that adds its subcommand.

Each verb of the command line lives in one module of this package. Its ``register`` adds the
verb's subparser, named ``COMMAND``, with every option and help text, and sets the
``handler`` default that `gatewayd.cli.main` calls with the parsed arguments; the handler
returns the exit code.

Every command imports every verb module, and ``--help`` builds the whole parser; a command
line that names its command first (after ``--log-level`` at most) builds only that verb's
parser, so that `gatewayd run` does not build a dozen others on its way to READY.
A verb module therefore imports at its top only what ``register`` needs (argparse, the standard
library, this module); what the verb runs with (the engine, the drivers, pydantic, rich, the
daemon) is imported inside the functions that use it, with ``TYPE_CHECKING`` imports for the
annotations. `tests/unit/test_cli_verbs.py` holds this.
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

    COMMAND: str

    def register(self, subparsers: Subparsers) -> None: ...
