"""`univg demo`: the whole method end to end on the embedded synthetic world."""

from __future__ import annotations

import argparse

PLAN = """univg demo runs the UniVG-R1 pipeline end to end on a laptop, with no download:
  1. generate a synthetic multi-image grounding world (training and held-out splits)
  2. load the shipped tiny Qwen2-VL base checkpoint
  3. stage 1: chain-of-thought SFT
  4. stage 2: GRPO and difficulty-aware GRPO from the same stage-1 checkpoint
  5. evaluate every stage on the held-out split and write report.md / report.html / results.json

The pipeline stages are landing one by one (see the README's status table); this build does not run
them yet."""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("demo", help="run the whole method end to end on synthetic data")
    parser.add_argument("--quick", action="store_true", help="a short run (minutes) instead of the full one")
    parser.add_argument("--out", default="univg-demo", help="output directory (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    print(PLAN)
    return 0
