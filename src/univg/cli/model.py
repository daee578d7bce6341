"""`univg model ...`: building and inspecting model checkpoints."""

from __future__ import annotations

import argparse
import time

from univg.cli.options import command


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("model", help="build model checkpoints (the tiny offline model)")
    model_subparsers = parser.add_subparsers(dest="model_command", metavar="MODEL_COMMAND")

    tiny = model_subparsers.add_parser(
        "tiny", help="write a tiny random-init Qwen2-VL checkpoint, offline, in seconds"
    )
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
    command(tiny, run_tiny)
    command(parser, lambda _args: parser.print_help())


def run_tiny(args: argparse.Namespace) -> int:
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
