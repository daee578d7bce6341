"""`univg demo`: the whole method end to end on the embedded synthetic world."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from univg.cli.options import add_command, add_defaulted, options_for, positive


def _run_options(parser: argparse.ArgumentParser, *, out: str, threads_help: str) -> None:
    """Where a run writes, its seed and its CPU threads (the numbers depend on the threads)."""
    from univg.demo.assets import DEMO_THREADS

    parser.add_argument("--out", default=out, help="output directory (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    parser.add_argument("--threads", type=positive, default=DEMO_THREADS, help=threads_help)


def register(subparsers: argparse._SubParsersAction) -> None:
    from univg.demo.pretrain import DEFAULT_PHASES, PretrainConfig

    parser = add_command(subparsers, "demo", run)
    parser.add_argument("--quick", action="store_true", help="a short run (minutes) instead of the full one")
    _run_options(
        parser,
        out="univg-demo",
        threads_help="CPU threads (default: %(default)s, what the README's numbers used; the numbers depend "
        "on it; one is faster on a machine busy with other work)",
    )
    parser.add_argument(
        "--base",
        default=None,
        help="base checkpoint to start from (default: the shipped one; see `univg demo pretrain-base`)",
    )
    commands = parser.add_subparsers(dest="demo_command", metavar="COMMAND")
    pretrain = add_command(commands, "pretrain-base", run_pretrain)
    _run_options(
        pretrain,
        out="univg-pretrain",
        threads_help="CPU threads (default: %(default)s); one is faster on a machine busy with other work, "
        "and the weights depend on it",
    )
    pretrain.add_argument(
        "--phase",
        action="append",
        type=_phase,
        default=None,
        metavar="TASKS:DIFFICULTY:STEPS[:named][:anneal]",
        help="a phase of training, in order, repeatable; ':named' answers name the target before its box, "
        "':anneal' decays the learning rate to 0 (default: "
        + " ".join(f"--phase {p}" for p in DEFAULT_PHASES)
        + ")",
    )
    pretrain.add_argument(
        "--minutes", type=float, default=None, help="also stop after this much training time (wall clock)"
    )
    pretrain.add_argument(
        "--init",
        type=Path,
        default=None,
        metavar="DIR",
        help="start from this checkpoint (an earlier base) instead of random weights; its card is kept",
    )
    add_defaulted(pretrain, PretrainConfig, "--n-train", positive, "training samples")
    add_defaulted(pretrain, PretrainConfig, "--n-eval", positive, "held-out samples")
    add_defaulted(pretrain, PretrainConfig, "--batch-size", positive, "samples a step")


def _phase(text: str) -> Any:
    from univg.demo.pretrain import Phase

    try:
        return Phase.parse(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_pretrain(args: argparse.Namespace) -> int:
    """Rebuild the demo's shipped base checkpoint (tiny Qwen2-VL, from random weights or an earlier base).

    Train the tiny Qwen2-VL on synthetic referring, locate and marked data, phase by phase, evaluate it on
    held-out data and write DIR/base (checkpoint + CARD.md), the demo's base model. Run again with the
    same arguments after a kill, it resumes where it stopped."""
    from univg.data.files import check_output
    from univg.demo.pretrain import PretrainConfig, pretrain_base

    options = {
        **options_for(PretrainConfig, args),
        "out": check_output(args.out, kind="folder", resumable=True),
    }
    if args.phase:
        options["phases"] = tuple(args.phase)
    config = PretrainConfig(**options)
    result = pretrain_base(config, progress=_say)
    print(
        f"{result.steps} steps in {result.train_seconds / 60:.1f} min ({result.samples_per_s:.1f} samples/s)"
    )
    for task, value in result.accuracy.items():
        print(f"held-out Acc@0.5 {task}: {value:.1f}")
    print(f"checkpoint and card: {result.base_dir}")
    print(f"rebuild: {result.command}")
    return 0


def run(args: argparse.Namespace) -> int:
    """Run the whole method end to end on synthetic data.

    Synthetic data, the shipped base model, CoT-SFT, GRPO and difficulty-aware GRPO, each evaluated on
    held-out data, in one report (DIR/report.html, DIR/report.md)."""
    from univg.data.files import check_output
    from univg.demo.assets import BASE_DIR
    from univg.demo.logs import logs_to_folder
    from univg.demo.pipeline import run_demo
    from univg.demo.report import terminal_summary
    from univg.evaluation.pages import REPORT_HTML, REPORT_MD, RESULTS_FILE

    out = check_output(args.out, kind="folder", resumable=True)  # a file or link in the way: before any work
    with logs_to_folder(out / "logs") as log_file:
        results = run_demo(
            out,
            quick=args.quick,
            seed=args.seed,
            base=args.base or BASE_DIR,
            threads=args.threads,
            progress=_say,
        )
    print(f"univg demo finished in {results.seconds / 60:.1f} min; {terminal_summary(results)}")
    print(f"logs: {log_file}")
    print(f"report: {out / REPORT_HTML} (also {REPORT_MD}, {RESULTS_FILE})")
    return 0
