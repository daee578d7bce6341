"""Evaluation throughput: `univg eval run` one request at a time against batched settings, in one run.

Same tiny Qwen2-VL (random weights that answer differently per prompt, so answers run to the token
limit), same synthetic held-out samples over one-, two- and many-image tasks (prompt lengths differ);
the settings alternate round by round so machine load hits all alike. Every setting must give the
predictions of the first row (one at a time through transformers' `generate`, the official evaluation's
structure), id for id. Medians of wall and CPU seconds go to
benchmarks/results/DATE-eval-throughput.{json,md}.

    python benchmarks/eval_throughput.py [--n 48] [--batch-sizes 8,16] [--max-new-tokens 32] [--rounds 2]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path
from typing import Any

import torch
from benchmark_support import Timed, machine, machine_line, medians, timed, write_results
from transformers.utils import logging as transformers_logging

from univg.data.synthetic import SynthConfig, generate_dataset
from univg.evaluation.harness import RunConfig, run_evaluation
from univg.evaluation.pages import Table
from univg.evaluation.predictions import read_predictions
from univg.models.tiny import TinySpec, build_tiny_model

BASELINE = "one at a time, generate's loop"


def settings(batch_sizes: list[int]) -> dict[str, dict[str, int]]:
    """Name -> (batch size, length-sort window, decoding loop): one at a time with transformers'
    `generate` loop (the official evaluation's structure), one at a time with univg's loop, then each
    batch size in the data's order and batched by prompt length, and the largest batched by length
    with `generate`'s loop (what the loop alone adds)."""
    chosen = {
        BASELINE: {"batch_size": 1, "length_sort_window": 1, "fast_decode": False},
        "one at a time": {"batch_size": 1, "length_sort_window": 1, "fast_decode": True},
    }
    for size in batch_sizes:
        chosen[f"batch {size}, data order"] = {
            "batch_size": size,
            "length_sort_window": 1,
            "fast_decode": True,
        }
        chosen[f"batch {size}, length-sorted"] = {
            "batch_size": size,
            "length_sort_window": 8,
            "fast_decode": True,
        }
    largest = max(batch_sizes)
    chosen[f"batch {largest}, length-sorted, generate's loop"] = {
        "batch_size": largest,
        "length_sort_window": 8,
        "fast_decode": False,
    }
    return chosen


def one_run(model: Path, synth: Path, out: Path, max_new_tokens: int, **batching: int) -> tuple[int, dict]:
    config = RunConfig(
        "synthetic",
        str(synth / "eval.jsonl"),
        str(model),
        str(out),
        max_new_tokens=max_new_tokens,
        progress=False,
        examples=0,
        **batching,
    )
    outcome = run_evaluation(config)
    records = read_predictions(out / "predictions.jsonl").records
    return outcome.generated_tokens, {k: r["response"] for k, r in records.items()}


def markdown(result: dict[str, Any]) -> str:
    info, setting = result["machine"], result["setting"]
    base = result["settings"][BASELINE]
    rows = [
        [
            name,
            f"{s['samples_per_wall_s']:.2f}",
            f"{s['samples_per_cpu_s']:.2f}",
            f"{s['tokens_per_wall_s']:.0f}",
            f"**{s['samples_per_wall_s'] / base['samples_per_wall_s']:.2f}x**",
            f"{s['samples_per_cpu_s'] / base['samples_per_cpu_s']:.2f}x",
            "yes" if s["identical_to_the_first_row"] else "**no**",
        ]
        for name, s in result["settings"].items()
    ]
    header = ["setting", "samples / s (wall)", "samples / CPU s", "tokens / s", "vs the first row (wall)"]
    header += ["(CPU)", "same predictions"]
    return "\n".join(
        [
            f"# Evaluation throughput: batched vs one at a time ({info['date']})",
            "",
            f"Command: `python benchmarks/eval_throughput.py --n {setting['n']} --batch-sizes "
            f"{','.join(map(str, setting['batch_sizes']))} --max-new-tokens {setting['max_new_tokens']} "
            f"--rounds {setting['rounds']}`. Machine: {machine_line(info)}.",
            "",
            f"`univg eval run` on {setting['n']} synthetic held-out samples (one-, two- and many-image tasks), "
            f"tiny random Qwen2-VL, greedy, up to {setting['max_new_tokens']} new tokens; medians of "
            f"{setting['rounds']} alternating round(s) after a warm-up run. Length-sorted: windows of 8 batches "
            "batched by prompt length (`--length-sort-window 8`, the default). Decoding: univg's loop "
            "(`models.fast_decode`, the default) unless the row says generate's loop (`--no-fast-decode`).",
            "",
            Table(header, rows).markdown(),
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=48, help="held-out samples (default: %(default)s)")
    parser.add_argument("--batch-sizes", default="8,16", help="batched settings (default: %(default)s)")
    parser.add_argument("--max-new-tokens", type=int, default=32, help="default: %(default)s")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=None, help="results folder (default: benchmarks/results)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    transformers_logging.disable_progress_bar()
    batch_sizes = [int(size) for size in args.batch_sizes.split(",")]
    chosen = settings(batch_sizes)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        synth = root / "synth"
        generate_dataset(synth, SynthConfig(n=0, n_eval=args.n, seed=0))
        model = build_tiny_model(root / "tiny", spec=TinySpec(initializer_range=0.1), seed=0)
        one_run(model, synth, root / "warmup", 2, batch_size=1, length_sort_window=1)  # first-call costs
        runs: dict[str, list[Timed]] = {name: [] for name in chosen}
        tokens: dict[str, list[int]] = {name: [] for name in chosen}
        answers: dict[str, dict] = {}
        for round_index in range(args.rounds):
            for index, (name, batching) in enumerate(chosen.items()):
                out = root / f"s{index}-r{round_index}"
                (generated, answers[name]), spent = timed(
                    lambda out=out, batching=batching: one_run(
                        model, synth, out, args.max_new_tokens, **batching
                    )
                )
                runs[name].append(spent)
                tokens[name].append(generated)

    summary = {}
    for name, batching in chosen.items():
        middle = medians(runs[name])
        summary[name] = {
            **batching,
            "median_wall_s": middle.wall_s,
            "median_cpu_s": middle.cpu_s,
            "samples_per_wall_s": args.n / middle.wall_s,
            "samples_per_cpu_s": args.n / middle.cpu_s,
            "tokens_per_wall_s": statistics.median(tokens[name]) / middle.wall_s,
            "identical_to_the_first_row": answers[name] == answers[BASELINE],
            "wall_s": [r.wall_s for r in runs[name]],
            "cpu_s": [r.cpu_s for r in runs[name]],
        }
    result = {
        "machine": machine(),
        "setting": {
            "n": args.n,
            "batch_sizes": batch_sizes,
            "max_new_tokens": args.max_new_tokens,
            "rounds": args.rounds,
        },
        "settings": summary,
    }
    text = markdown(result)
    print(text)
    for path in write_results("eval-throughput", result, text, args.out):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
