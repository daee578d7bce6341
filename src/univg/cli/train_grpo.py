"""`univg train grpo --config RECIPE.yaml [--field value ...] [--resume]`."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "grpo",
        help="stage 2: difficulty-aware GRPO",
        description="Stage 2 of UniVG-R1. Every field of UniVGGRPOConfig (TRL's GRPOConfig plus data, reward "
        "and difficulty fields) can be set in the YAML recipe and overridden as --field value.",
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue from the last checkpoint in output_dir"
    )
    parser.add_argument(
        "options", nargs=argparse.REMAINDER, help="--config RECIPE.yaml and --field value pairs"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from univg.training.config import parse_config
    from univg.training.grpo import UniVGGRPOConfig, train_grpo

    config = parse_config(UniVGGRPOConfig, args.options)
    result = train_grpo(config, resume=args.resume)
    print(
        f"trained {result.global_step} steps in {result.runtime_s:.1f} s; model saved to {result.output_dir}"
    )
    for name, value in result.final_metrics.items():
        print(f"  {name}: {value:.4f}")
    return 0
