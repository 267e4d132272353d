"""What every command-line front end shares: exit code 2 and one line for a usage or configuration error.

A front end's ``main()`` is ``parse()`` then ``configured()``: neither lets a traceback out for a mistake of
the caller's. ``--help`` exits 0 through ``parse()`` as argparse means it to.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from neotool_common.errors import ConfigurationError

__all__ = ["EXIT_USAGE", "UsageParser", "configured", "parse"]

EXIT_USAGE = 2


class UsageParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line that points at ``--help``."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see {self.prog} --help)\n")


def parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace | int:
    """The parsed arguments, or the exit code argparse chose (0 after ``--help``, 2 for a usage error)."""
    try:
        return parser.parse_args(argv)
    except SystemExit as stopped:
        return stopped.code if isinstance(stopped.code, int) else EXIT_USAGE


def configured(prog: str, run: Callable[[], int]) -> int:
    """``run()``'s exit code; a :class:`ConfigurationError` is printed as ``prog: <error>`` and exits 2."""
    try:
        return run()
    except ConfigurationError as error:
        print(f"{prog}: {error}", file=sys.stderr)
        return EXIT_USAGE
