"""`univg train grpo --config RECIPE.yaml [--field value ...] [--resume]`."""

from __future__ import annotations

import argparse

from univg.cli.train import add_recipe_arguments, print_result, recipe_options


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "grpo",
        help="stage 2: difficulty-aware GRPO",
        description="Stage 2 of UniVG-R1. Every field of UniVGGRPOConfig (TRL's GRPOConfig plus data, reward "
        "and difficulty fields) can be set in the YAML recipe and overridden as --field value.",
        epilog="example: univg train grpo --config recipes/grpo/demo.yaml --difficulty_weighting log",
    )
    add_recipe_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from univg.training.config import parse_config
    from univg.training.grpo import UniVGGRPOConfig, train_grpo

    config = parse_config(UniVGGRPOConfig, recipe_options(args))
    result = train_grpo(config, resume=args.resume)
    if config.process_index == 0:
        print_result(result)
    return 0
