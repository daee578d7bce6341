"""Entry point of the `univg` command, and the one place errors become messages and exit statuses.

Each subcommand lives in its own module with a `register(subparsers)` function that adds its parser
with `options.add_command` (the handler's docstring is the command's help). Modules import heavy libraries (torch, transformers)
inside their handlers, so `univg --help` stays instant.

Whatever goes wrong reaches the user as one line on stderr, ``univg <command>: <what, where, what to
do>``, with the exit status of its kind: 0 done, 1 bad data (or a run that failed), 2 wrong usage
(argparse's own errors included). Library errors (`UnivgError`) name the option that fixes them,
spelled here as the flag the user typed. An error that is not one of ours is a bug: one line says so,
and ``--verbose`` shows its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from univg import __version__
from univg.cli.options import CommandParser, flag_speller
from univg.core.errors import EXIT_BAD_DATA, UnivgError
from univg.data.files import os_error_advice

COMMAND_MODULES = (
    "univg.cli.demo",
    "univg.cli.data",
    "univg.cli.model",
    "univg.cli.predict",
    "univg.cli.train",
    "univg.cli.eval",
    "univg.cli.serve",
    "univg.cli.cot",
)
EXIT_INTERRUPTED = 130

logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(
        prog="univg",
        description="UniVG-R1: reasoning-guided universal visual grounding with reinforcement learning.",
    )
    parser.add_argument("--version", action="version", version=f"univg {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages and show warnings")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def _configure_logging(verbose: bool) -> None:
    """Log lines on stderr; Python warnings (libraries' deprecations, Pillow's) only with --verbose.

    Warnings still reach the log files that long commands keep, through the root logger.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    if not verbose:
        handler.addFilter(lambda record: record.name != "py.warnings")
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=[handler], force=True)
    logging.captureWarnings(True)
    if not verbose:  # the hub client logs each failed request; what failed reaches the user as our error
        os.environ.setdefault("HF_HUB_VERBOSITY", "error")


def _fail(prog: str, message: str) -> None:
    line = " ".join(part.strip() for part in message.splitlines() if part.strip())
    print(f"{prog}: {line}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args.verbose)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    command: argparse.ArgumentParser = getattr(args, "command_parser", parser)
    try:
        return int(args.func(args) or 0)
    except UnivgError as exc:
        _fail(command.prog, exc.render(flag_speller(command)))
        return exc.exit_code
    except KeyboardInterrupt:
        _fail(command.prog, "interrupted")
        return EXIT_INTERRUPTED
    except OSError as exc:  # a file or device failed where the library did not expect it
        where = f"{exc.filename}: " if exc.filename else ""
        _fail(command.prog, f"{where}{os_error_advice(exc)}")
        return EXIT_BAD_DATA
    except Exception as exc:
        if args.verbose:
            raise
        logger.debug("internal error", exc_info=True)
        _fail(
            command.prog,
            f"internal error ({type(exc).__name__}: {exc}); this is a bug in univg: rerun with --verbose "
            "for the traceback and please report it",
        )
        return EXIT_BAD_DATA


if __name__ == "__main__":
    sys.exit(main())
