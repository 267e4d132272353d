"""``neotool-new``: start a new consumer package from the scaffold (:mod:`neotool_common.scaffold`).

::

    neotool-new consumer NAME --topic TOPIC [--dir DIR] [--group GROUP]

Writes a standard-shaped package (Batch Workflow Standard §4.5) into ``DIR`` (default ``./NAME``), which must not
exist yet, and lists what it wrote. Exit codes: 0 written; 2 a bad name or topic, or ``DIR`` exists (one line on
stderr, nothing written).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from neotool_common.cli.usage import EXIT_USAGE, configured, parse
from neotool_common.scaffold.names import ConsumerNames
from neotool_common.scaffold.render import write_consumer

__all__ = ["EXIT_USAGE", "PROG", "main"]

PROG = "neotool-new"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Start a new neotool-common package from the scaffold")
    sub = parser.add_subparsers(dest="kind", required=True)
    consumer = sub.add_parser("consumer", help="a Kafka consumer package: schema, process(), migrations, tests")
    consumer.add_argument("name", metavar="NAME", help="lowercase words joined by '-', e.g. people-loader")
    consumer.add_argument("--topic", required=True, help="the topic it reads, {domain}.{entity}.v{N}")
    consumer.add_argument("--dir", type=Path, help="where to write it (default: ./NAME); must not exist")
    consumer.add_argument("--group", help="its consumer group (default: NAME)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run once; returns the exit code (usage errors included, never raises them)."""
    args = parse(build_parser(), argv)
    return args if isinstance(args, int) else configured(PROG, lambda: _write(args))


def _write(args: argparse.Namespace) -> int:
    names = ConsumerNames.of(args.name, args.topic, args.group)
    directory: Path = args.dir or Path(names.name)
    written = write_consumer(names, directory)
    print(f"Wrote {len(written)} files of {names.name} to {directory}:")
    print("\n".join(f"  {path}" for path in written))
    print(f"Next: cd {directory} and read README.md (tests: pytest; topics: neotool-topics --dry-run).")
    return 0
