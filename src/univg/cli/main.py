"""Entry point of the `univg` command.

Each subcommand lives in its own module with a `register(subparsers)` function that adds its parser
and sets `func`. Modules import heavy libraries (torch, transformers) inside their handlers, so
`univg --help` stays instant.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from univg import __version__

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="univg",
        description="UniVG-R1: reasoning-guided universal visual grounding with reinforcement learning.",
    )
    parser.add_argument("--version", action="version", version=f"univg {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
