"""Evaluation throughput: batched vs one-at-a-time `univg eval run` on the tiny model, in one run.

Same tiny Qwen2-VL (random weights that answer differently per prompt, so answers run to the token
limit), same synthetic held-out samples; the two settings alternate round by round so machine load
hits both alike. Checks that both give identical predictions, then prints a table and the ratio.

    python benchmarks/eval_throughput.py [--n 48] [--batch-size 8] [--max-new-tokens 32] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

from univg.data.synthetic import SynthConfig, generate_dataset
from univg.evaluation.harness import RunConfig, run_evaluation
from univg.evaluation.predictions import read_predictions
from univg.models.tiny import TinySpec, build_tiny_model


def one_run(
    model: Path, synth: Path, out: Path, batch_size: int, max_new_tokens: int
) -> tuple[float, float, dict]:
    config = RunConfig(
        "synthetic",
        str(synth / "eval.jsonl"),
        str(model),
        str(out),
        batch_size=batch_size,
        max_new_tokens=max_new_tokens,
        progress=False,
        examples=0,
    )
    outcome = run_evaluation(config)
    responses = {k: r["response"] for k, r in read_predictions(out / "predictions.jsonl").records.items()}
    return outcome.samples_per_s, outcome.tokens_per_s, responses


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=48, help="held-out samples (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=8, help="batched setting (default: %(default)s)")
    parser.add_argument("--max-new-tokens", type=int, default=32, help="default: %(default)s")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds (default: %(default)s)")
    parser.add_argument("--out", help="also write the numbers to this JSON file")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        synth = root / "synth"
        generate_dataset(synth, SynthConfig(n=0, n_eval=args.n, seed=0))
        model = build_tiny_model(root / "tiny", spec=TinySpec(initializer_range=0.1), seed=0)
        one_run(model, synth, root / "warmup", 1, 2)  # first-call costs (imports, kernels) out of the way
        rates: dict[int, list[tuple[float, float]]] = {1: [], args.batch_size: []}
        answers: dict[int, dict] = {}
        for round_index in range(args.rounds):
            for batch_size in rates:
                out = root / f"b{batch_size}-r{round_index}"
                samples_s, tokens_s, answers[batch_size] = one_run(
                    model, synth, out, batch_size, args.max_new_tokens
                )
                rates[batch_size].append((samples_s, tokens_s))
        identical = answers[1] == answers[args.batch_size]

    print(f"{args.n} synthetic samples, up to {args.max_new_tokens} new tokens, {args.rounds} rounds")
    print(f"{'setting':<16} {'samples/s':>10} {'tokens/s':>10}")
    medians = {}
    for batch_size, values in rates.items():
        medians[batch_size] = (
            statistics.median(v[0] for v in values),
            statistics.median(v[1] for v in values),
        )
        name = "one at a time" if batch_size == 1 else f"batch {batch_size}"
        print(f"{name:<16} {medians[batch_size][0]:>10.2f} {medians[batch_size][1]:>10.1f}")
    ratio = medians[args.batch_size][0] / medians[1][0]
    print(f"batched / one-at-a-time throughput: {ratio:.2f}x; identical predictions: {identical}")
    if args.out:
        result = {
            "n": args.n,
            "max_new_tokens": args.max_new_tokens,
            "samples_per_s": {str(k): v[0] for k, v in medians.items()},
            "tokens_per_s": {str(k): v[1] for k, v in medians.items()},
            "ratio": ratio,
            "identical": identical,
        }
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
