"""`univg data ...`: converting, validating and synthesizing grounding data."""

from __future__ import annotations

import argparse
import importlib

from univg.cli.options import add_command_group

DATA_COMMAND_MODULES: tuple[str, ...] = ("univg.cli.data_convert", "univg.cli.data_synth")


def register(subparsers: argparse._SubParsersAction) -> None:
    data_subparsers = add_command_group(
        subparsers, "data", help="convert, validate and synthesize grounding data", metavar="DATA_COMMAND"
    )
    for name in DATA_COMMAND_MODULES:
        importlib.import_module(name).register(data_subparsers)
