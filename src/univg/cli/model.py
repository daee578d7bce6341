"""`univg model ...`: building and inspecting model checkpoints."""

from __future__ import annotations

import argparse
import time

from univg.cli.options import add_command, add_command_group


def register(subparsers: argparse._SubParsersAction) -> None:
    model_subparsers = add_command_group(
        subparsers, "model", help="build model checkpoints (the tiny offline model)", metavar="MODEL_COMMAND"
    )

    tiny = add_command(model_subparsers, "tiny", run_tiny)
    tiny.add_argument("--out", required=True, help="directory to write the checkpoint to")
    tiny.add_argument(
        "--vocab",
        choices=("trained", "grounding", "qwen"),
        default="trained",
        help="trained: a ~374-token BPE trained now; grounding: ~900 tokens, every word of the synthetic "
        "world one token (the demo base's); qwen: the real 151k Qwen vocabulary (default: %(default)s)",
    )
    tiny.add_argument("--seed", type=int, default=0, help="weight initialisation seed (default: %(default)s)")
    tiny.add_argument(
        "--family",
        choices=("qwen2_vl", "qwen2_5_vl"),
        default="qwen2_vl",
        help="architecture: qwen2_vl writes boxes in 0..1000, qwen2_5_vl in pixels (default: %(default)s)",
    )
    tiny.add_argument("--overwrite", action="store_true", help="replace an existing directory")


def run_tiny(args: argparse.Namespace) -> int:
    """Write a tiny random-init Qwen2-VL checkpoint, offline, in seconds."""
    from univg.models.tiny import build_tiny_model, parameter_count

    start = time.perf_counter()
    path = build_tiny_model(
        args.out, vocab=args.vocab, seed=args.seed, family=args.family, overwrite=args.overwrite
    )
    elapsed = time.perf_counter() - start
    print(
        f"wrote a tiny {args.family} checkpoint ({args.vocab} vocabulary, "
        f"{parameter_count(path):,} parameters) to {path} in {elapsed:.1f}s"
    )
    return 0
