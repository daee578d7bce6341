"""`univg train sft --config RECIPE.yaml [--field value ...] [--resume]`."""

from __future__ import annotations

import argparse

from univg.cli.train import add_recipe_arguments, print_result, recipe_options


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "sft",
        help="stage 1: chain-of-thought SFT (cold start)",
        description="Stage 1 of UniVG-R1. Every field of UniVGSFTConfig (TRL's SFTConfig plus data, "
        "model-part and LoRA fields) can be set in the YAML recipe and overridden as --field value. "
        "Under `accelerate launch` it runs on every process (DDP, FSDP, DeepSpeed).",
        epilog="example: univg train sft --config recipes/sft/demo.yaml --max_steps 20",
    )
    add_recipe_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from univg.training.config import parse_config
    from univg.training.sft import UniVGSFTConfig, train_sft

    config = parse_config(UniVGSFTConfig, recipe_options(args))
    result = train_sft(config, resume=args.resume)
    if config.process_index == 0:
        print_result(result)
    return 0
