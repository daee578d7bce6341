"""`univg train ...`: stage 1 (CoT-SFT) and stage 2 (difficulty-aware GRPO).

Both stages take `--config RECIPE.yaml`, any `--field value` override of their config dataclass, and
`--resume`; the overrides go, in order, to TRL's parser, which knows the fields and rejects unknown ones.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Sequence
from typing import Any

TRAIN_COMMAND_MODULES: tuple[str, ...] = ("univg.cli.train_sft", "univg.cli.train_grpo")


class RecipeArgumentParser(argparse.ArgumentParser):
    """Keeps every option it does not declare (the recipe overrides) in `overrides`, in order.

    argparse cannot collect unknown `--options` into a positional (a REMAINDER that starts with an
    option is rejected), and the overrides can be any field of the config.
    """

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        parsed, overrides = super().parse_known_args(args, namespace)
        parsed.overrides = overrides
        return parsed, []


def add_recipe_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every training stage shares."""
    parser.add_argument("--config", metavar="RECIPE.yaml", help="YAML recipe with the config fields")
    parser.add_argument(
        "--resume", action="store_true", help="continue from the last checkpoint in output_dir"
    )


def recipe_options(args: argparse.Namespace) -> list[str]:
    """`--config` and the overrides, as TRL's parser reads them."""
    return (["--config", args.config] if args.config else []) + list(args.overrides)


def print_result(result: Any) -> None:
    print(
        f"trained {result.global_step} steps in {result.runtime_s:.1f} s; model saved to {result.output_dir}"
    )
    for name, value in result.final_metrics.items():
        print(f"  {name}: {value:.4f}")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("train", help="train stage 1 (sft) or stage 2 (grpo)")
    train_subparsers = parser.add_subparsers(
        dest="train_command", metavar="STAGE", parser_class=RecipeArgumentParser
    )
    for name in TRAIN_COMMAND_MODULES:
        importlib.import_module(name).register(train_subparsers)
    parser.set_defaults(func=lambda _args: parser.print_help())
