"""`univg data synth`: write the synthetic grounding world (training and held-out splits)."""

from __future__ import annotations

import argparse
import sys

from univg.cli.options import add_command


def register(data_subparsers: argparse._SubParsersAction) -> None:
    from univg.data.synthetic.levels import DIFFICULTIES
    from univg.data.synthetic.tasks import TASK_GROUPS, TASKS

    parser = add_command(data_subparsers, "synth", run)
    parser.add_argument("--out", required=True, metavar="DIR", help="output directory")
    parser.add_argument(
        "--n", type=int, default=1000, metavar="N", help="training samples (default: %(default)s)"
    )
    parser.add_argument(
        "--n-eval",
        type=int,
        default=None,
        metavar="M",
        help="held-out samples (default: N/5, at least one per task)",
    )
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default: %(default)s)")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="processes that draw the samples (default: %(default)s); the output is the same for any number",
    )
    parser.add_argument(
        "--tasks",
        default="default",
        metavar="LIST",
        help=f"comma-separated tasks or groups (default: %(default)s). Tasks: {', '.join(TASKS)}. "
        f"Groups: {', '.join(f'{name} ({len(tasks)})' for name, tasks in TASK_GROUPS.items())}",
    )
    parser.add_argument("--difficulty", choices=DIFFICULTIES, default="mixed", help="(default: %(default)s)")
    parser.add_argument(
        "--image-size",
        type=int,
        default=112,
        metavar="PX",
        help="image side in pixels (default: %(default)s)",
    )
    parser.add_argument(
        "--wrong-chains",
        type=int,
        default=0,
        metavar="K",
        help="also store this many deliberately wrong chains per sample in extra.wrong_chains",
    )
    parser.add_argument(
        "--preview", action="store_true", help="also write a contact sheet per task to DIR/preview/"
    )


def run(args: argparse.Namespace) -> int:
    """Generate the synthetic multi-image grounding world (images + JSONL, train and eval splits).

    Write DIR/train.jsonl and DIR/eval.jsonl (canonical samples with teacher chains), their PNG images
    under DIR/images/ and DIR/manifest.json. The same seed gives the same bytes; the eval split shares no
    scene with training."""
    from univg.data.files import check_output
    from univg.data.synthetic import SynthConfig, generate_dataset, parse_tasks

    check_output(args.out, kind="folder", resumable=True, option="out")  # a file or link in the way: now
    try:
        config = SynthConfig(
            n=args.n,
            n_eval=args.n_eval,
            seed=args.seed,
            tasks=parse_tasks(args.tasks),
            difficulty=args.difficulty,
            image_size=args.image_size,
            wrong_chains=args.wrong_chains,
            preview=args.preview,
        )
    except ValueError as exc:
        print(f"univg data synth: {exc}", file=sys.stderr)
        return 2
    summary = generate_dataset(args.out, config, workers=args.workers)
    total = sum(sum(counts.values()) for counts in summary.counts.values())
    rate = total / summary.seconds if summary.seconds > 0 else float("inf")
    print(f"wrote {total} samples to {summary.out_dir} in {summary.seconds:.1f} s ({rate:.0f} samples/s)")
    tasks = list(config.tasks)
    width = max(len(t) for t in tasks)
    print(f"  {'task':<{width}}  {'train':>6}  {'eval':>6}")
    for task in tasks:
        train, held = summary.counts["train"].get(task, 0), summary.counts["eval"].get(task, 0)
        print(f"  {task:<{width}}  {train:>6}  {held:>6}")
    for split, path in summary.files.items():
        levels = ", ".join(f"{name} {count}" for name, count in sorted(summary.levels[split].items()))
        print(f"{split}: {path} ({levels})")
    for path in summary.previews:
        print(f"preview: {path}")
    return 0
