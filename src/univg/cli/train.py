"""`univg train sft|grpo --config RECIPE.yaml [--field value ...] [--resume]`: the two stages.

Both stages take `--config RECIPE.yaml`, any `--field value` override of their config dataclass, and
`--resume`; the overrides go, in order, to TRL's parser, which knows the fields and rejects unknown ones.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from univg.cli.options import CommandParser, command


@dataclass(frozen=True)
class TrainStage:
    """One `univg train` subcommand: its help, and the config class and function it runs."""

    name: str
    help: str
    description: str
    example: str
    module: str  # imported when the stage runs, so `univg --help` stays instant
    config_class: str
    train_function: str


STAGES: tuple[TrainStage, ...] = (
    TrainStage(
        "sft",
        "stage 1: chain-of-thought SFT (cold start)",
        "Stage 1 of UniVG-R1. Every field of UniVGSFTConfig (TRL's SFTConfig plus data, model-part and LoRA "
        "fields) can be set in the YAML recipe and overridden as --field value. Under `accelerate launch` it "
        "runs on every process (DDP, FSDP, DeepSpeed).",
        "univg train sft --config recipes/sft/demo.yaml --max_steps 20",
        "univg.training.sft",
        "UniVGSFTConfig",
        "train_sft",
    ),
    TrainStage(
        "grpo",
        "stage 2: difficulty-aware GRPO",
        "Stage 2 of UniVG-R1. Every field of UniVGGRPOConfig (TRL's GRPOConfig and ModelConfig plus data, "
        "reward and difficulty fields) can be set in the YAML recipe and overridden as --field value.",
        "univg train grpo --config recipes/grpo/demo.yaml --difficulty_weighting log",
        "univg.training.grpo",
        "UniVGGRPOConfig",
        "train_grpo",
    ),
)


class RecipeArgumentParser(CommandParser):
    """Keeps every option it does not declare (the recipe overrides) in `overrides`, in order.

    argparse cannot collect unknown `--options` into a positional (a REMAINDER that starts with an
    option is rejected), and the overrides can be any field of the config. A config field is set as
    ``--field_name``, which is how errors name it too.
    """

    def flag(self, dest: str) -> str:
        return super().flag(dest) if dest in ("config", "resume") else f"--{dest}"

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        parsed, overrides = super().parse_known_args(args, namespace)
        parsed.overrides = overrides
        return parsed, []


def recipe_options(args: argparse.Namespace) -> list[str]:
    """`--config` and the overrides, as TRL's parser reads them."""
    return (["--config", args.config] if args.config else []) + list(args.overrides)


def print_result(result: Any) -> None:
    print(
        f"trained {result.global_step} steps in {result.runtime_s:.1f} s; model saved to {result.output_dir}"
    )
    for name, value in result.final_metrics.items():
        print(f"  {name}: {value:.4f}")


def run(args: argparse.Namespace) -> int:
    from univg.training.config import parse_config

    module = importlib.import_module(args.stage.module)
    config = parse_config(getattr(module, args.stage.config_class), recipe_options(args))
    result = getattr(module, args.stage.train_function)(config, resume=args.resume)
    if config.process_index == 0:
        print_result(result)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("train", help="train stage 1 (sft) or stage 2 (grpo)")
    stages = parser.add_subparsers(dest="train_command", metavar="STAGE", parser_class=RecipeArgumentParser)
    for stage in STAGES:
        stage_parser = stages.add_parser(
            stage.name, help=stage.help, description=stage.description, epilog=f"example: {stage.example}"
        )
        stage_parser.add_argument(
            "--config", metavar="RECIPE.yaml", help="YAML recipe with the config fields"
        )
        stage_parser.add_argument(
            "--resume", action="store_true", help="continue from the last checkpoint in output_dir"
        )
        stage_parser.set_defaults(stage=stage)
        command(stage_parser, run)
    command(parser, lambda _args: parser.print_help())
