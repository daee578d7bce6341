"""`univg data ...`: converting, validating and synthesizing grounding data."""

from __future__ import annotations

import argparse
import importlib

from univg.cli.options import command

DATA_COMMAND_MODULES: tuple[str, ...] = ("univg.cli.data_convert", "univg.cli.data_synth")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("data", help="convert, validate and synthesize grounding data")
    data_subparsers = parser.add_subparsers(dest="data_command", metavar="DATA_COMMAND")
    for name in DATA_COMMAND_MODULES:
        importlib.import_module(name).register(data_subparsers)
    command(parser, lambda _args: parser.print_help())
