"""``neotool-dlq``: inspect, explain and safely replay dead-lettered records.

::

    neotool-dlq list   DLQ_TOPIC [filters] [--json]
    neotool-dlq show   DLQ_TOPIC --offset N [--partition P]
    neotool-dlq stats  DLQ_TOPIC [filters] [--json]
    neotool-dlq replay DLQ_TOPIC [filters] [--to TOPIC] [--dry-run] [--group G] [--from-beginning]
                                 [--max-replays 3] [--no-park] [--rate N]

Exit codes: 0 done; 1 some records were not replayed (each is listed); 2 usage or configuration error
(one line on stderr, no traceback); 130 interrupted (progress saved). The work is done by
:mod:`neotool_common.dlqtool`; this module parses arguments and dispatches to the subcommands
(:mod:`~.dlq_inspect`, :mod:`~.dlq_replay`), which print.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable, Sequence

from confluent_kafka import KafkaException

from neotool_common.cli.dlq_args import build_parser
from neotool_common.cli.dlq_inspect import cmd_list, cmd_show, cmd_stats
from neotool_common.cli.dlq_options import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, PROG

# Importable from here, where the tests have always found it.
from neotool_common.cli.dlq_replay import PAUSE_AFTER_ACKS_ENV as PAUSE_AFTER_ACKS_ENV  # noqa: PLC0414
from neotool_common.cli.dlq_replay import cmd_replay
from neotool_common.cli.usage import parse
from neotool_common.errors import ConfigurationError
from neotool_common.observability.logs import configure_logging

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit code (``--help`` and usage errors included, never raises them).

    A closed pipe (``neotool-dlq list … | head -1``) ends it quietly with 0: the reader got what it wanted.
    """
    try:
        code = _main(argv)
        sys.stdout.flush()  # here, where a closed pipe is caught, not at exit
    except BrokenPipeError:
        # Whatever is still buffered would fail again at exit: send it nowhere.
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    return code


def _main(argv: Sequence[str] | None) -> int:
    args = parse(build_parser(PROG), argv)
    if isinstance(args, int):
        return args
    # librdkafka's own lines (--verbose) and any warning: JSON on stderr, like every other log of the project.
    configure_logging("INFO" if args.verbose else "WARNING", "json")
    try:
        return COMMANDS[args.command](args)
    except ConfigurationError as error:
        print(f"{PROG}: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KafkaException as error:
        print(f"{PROG}: Kafka error: {error.args[0].str()}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; progress up to the last commit is saved", file=sys.stderr)
        return EXIT_INTERRUPTED


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "list": cmd_list,
    "show": cmd_show,
    "stats": cmd_stats,
    "replay": cmd_replay,
}


if __name__ == "__main__":
    sys.exit(main())
