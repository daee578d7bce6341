"""`univg eval run` / `univg eval score`: evaluate a model on a benchmark, or score any predictions file."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any

from univg.cli.options import (
    add_command,
    add_command_group,
    add_defaulted,
    add_loading_options,
    non_negative,
    options_for,
    positive,
)
from univg.core.errors import UsageError

_COORDS = ("qwen2vl", "qwen25vl", "normalized")


def _tasks(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _common(parser: argparse.ArgumentParser) -> None:
    from univg.core.parsing import PARSE_MODES
    from univg.evaluation import BENCHMARK_NAMES, RunConfig

    parser.add_argument(
        "--benchmark", required=True, choices=BENCHMARK_NAMES, help="which benchmark the data is"
    )
    parser.add_argument("--data", required=True, metavar="PATH", help="the benchmark's annotation file")
    parser.add_argument(
        "--image-root",
        metavar="DIR",
        help="folder the data's image paths are relative to (needed for pixel boxes: lisa, llmseg, revos, "
        "reasonvos; synthetic defaults to the data file's folder)",
    )
    parser.add_argument(
        "--split", help="the split the file holds, when its name does not say (refcoco*, lisa)"
    )
    parser.add_argument("--tasks", type=_tasks, metavar="LIST", help="comma-separated tasks to keep")
    parser.add_argument(
        "--limit", type=positive, metavar="N", help="at most N samples per task (the first ones)"
    )
    parser.add_argument(
        "--parse",
        choices=PARSE_MODES,
        help="primary parse mode (all three are reported): strict = the paper's format, answer = the box in "
        "<answer> (default), first = the first box anywhere, as the official scripts do",
    )
    parser.add_argument(
        "--examples",
        type=non_negative,
        default=RunConfig.examples,
        metavar="K",
        help="worst predictions per task drawn in report.html (default: %(default)s)",
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    from univg.evaluation import RunConfig

    eval_subparsers = add_command_group(
        subparsers,
        "eval",
        help="evaluate a model on the paper's benchmarks, or score a predictions file",
        metavar="EVAL_COMMAND",
        description="Evaluate on MIG-Bench, RefCOCO/+/g, LISA, LLMSeg, ReVOS, ReasonVOS or the synthetic world.",
    )

    run = add_command(eval_subparsers, "run", run_command)
    _common(run)
    source = run.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="checkpoint directory, LoRA adapter directory or hub id")
    source.add_argument(
        "--endpoint",
        metavar="URL",
        help="evaluate the model behind an OpenAI-compatible endpoint instead, e.g. http://127.0.0.1:8000/v1 "
        "(univg serve, vLLM, an API); needs --endpoint-model",
    )
    endpoint = run.add_argument_group("with --endpoint")
    endpoint.add_argument("--endpoint-model", metavar="NAME", help="the model name the endpoint serves")
    endpoint.add_argument(
        "--api-key-env", metavar="VAR", help="environment variable holding the endpoint's API key"
    )
    add_defaulted(endpoint, RunConfig, "--concurrency", positive, "requests in flight")
    endpoint.add_argument(
        "--coords",
        choices=_COORDS,
        help="how the endpoint's model writes boxes (default: qwen2vl; a local model's family decides)",
    )
    run.add_argument("--out", required=True, metavar="DIR", help="output folder (reused to resume)")
    add_defaulted(run, RunConfig, "--batch-size", positive, "requests per batch")
    run.add_argument(
        "--length-sort-window",
        type=positive,
        default=RunConfig.length_sort_window,
        metavar="BATCHES",
        help="batch the requests of this many batches by prompt length, so little is padding; 1 keeps the "
        "data's order (same answers either way; default: %(default)s)",
    )
    run.add_argument(
        "--no-fast-decode",
        dest="fast_decode",
        action="store_false",
        help="decode with transformers' generate loop instead of univg's (Qwen2-VL models; the same answers)",
    )
    run.add_argument(
        "--style",
        choices=("univg", "plain"),
        help="prompt: univg = UniVG-R1's reasoning suffix (default), plain = Qwen2-VL plain grounding",
    )
    run.add_argument(
        "--max-new-tokens", type=positive, default=RunConfig.max_new_tokens, help="default: %(default)s"
    )
    add_loading_options(run, device_map_default="this process's device")
    run.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")

    score = add_command(eval_subparsers, "score", score_command)
    _common(score)
    score.add_argument("--predictions", required=True, metavar="P.jsonl", help="the predictions file")
    score.add_argument(
        "--coords",
        choices=_COORDS,
        help="how the responses write boxes: qwen2vl = 0..1000 (default), qwen25vl = pixels of the resized "
        "image, normalized = 0..1",
    )
    score.add_argument(
        "--max-pixels", type=positive, help="pixel budget qwen25vl boxes refer to (default: 401408)"
    )
    score.add_argument("--out", metavar="DIR", help="where the reports go (default: the predictions' folder)")
    score.add_argument("--label", help="the model's name in the reports")
    score.add_argument("--json", action="store_true", help="print the scores as JSON")


def _summary(results: dict[str, Any]) -> str:
    width = max([len(t) for t in results["tasks"]] + [len("average")])
    lines = [f"{'task':<{width}}  {'n':>6}  {'acc@0.5':>8}  {'miou':>6}  (parse: {results['parse']})"]
    rows = [*results["tasks"].items(), ("average", results["average"])]
    lines += [f"{t:<{width}}  {int(m['n']):>6}  {m['acc@0.5']:>8.2f}  {m['miou']:>6.2f}" for t, m in rows]
    counts = results["counts"]
    lines.append(
        f"invalid ground truth excluded: {counts['invalid_gt']}; missing predictions (wrong): {counts['missing']}; "
        f"errors: {counts['errors']}; unreadable: {counts['unreadable']}"
    )
    if counts["unknown_ids"]:
        shown = ", ".join(repr(i) for i in results["unknown_ids"][:5]) + (
            ", ..." if counts["unknown_ids"] > 5 else ""
        )
        lines.append(f"predictions for ids not in the data (ignored): {counts['unknown_ids']} ({shown})")
    if counts["duplicate_lines"]:
        lines.append(
            f"repeated lines (an error retried, or the same answer twice): {counts['duplicate_lines']}"
        )
    return "\n".join(lines)


def _endpoint_problem(args: argparse.Namespace) -> str | None:
    """Flags that do not go with the chosen model source, or None."""
    if args.endpoint is None:
        given = [f for f in ("endpoint_model", "api_key_env") if getattr(args, f) is not None]
        return f"--{given[0].replace('_', '-')} needs --endpoint" if given else None
    if not args.endpoint_model:
        return "--endpoint needs --endpoint-model NAME (the model name the endpoint serves)"
    local = [
        flag
        for flag, value in (
            ("--adapter", args.adapter),
            ("--device-map", args.device_map),
            ("--attn-implementation", args.attn_implementation),
        )
        if value is not None
    ]
    return f"{local[0]} applies to a local --model, not to --endpoint" if local else None


def run_command(args: argparse.Namespace) -> int:
    """Generate answers with a model (resumable, data-parallel), then score them.

    Generate an answer for every sample, appending each to OUT/predictions.jsonl as it is made; a rerun
    skips the ids already answered. Under `accelerate launch` or torchrun each process takes a share.
    Writes OUT/results.json, OUT/report.md and OUT/report.html."""
    from univg.evaluation import RunConfig, run_evaluation

    problem = _endpoint_problem(args)
    if problem is not None:
        raise UsageError(problem)
    if args.endpoint:  # the openai client's HTTP library logs every request at INFO
        for name in ("httpx", "httpx2"):
            logging.getLogger(name).setLevel(logging.WARNING)
    options = options_for(RunConfig, args)
    if args.endpoint:
        options["model"] = args.endpoint_model  # the endpoint serves the model by this name
    outcome = run_evaluation(RunConfig(**options))
    if outcome.results is None:
        return 0
    print(
        f"generated {outcome.generated} predictions in {outcome.seconds:.1f} s "
        f"({outcome.samples_per_s:.2f} samples/s, {outcome.tokens_per_s:.1f} tokens/s); "
        f"{outcome.skipped} already there",
        file=sys.stderr,
    )
    print(_summary(outcome.results))
    print("wrote " + ", ".join(str(p) for p in outcome.paths.values()), file=sys.stderr)
    return 0


def score_command(args: argparse.Namespace) -> int:
    """Score a predictions file ({'id', 'response'} per line) from any model.

    Score a JSONL predictions file (one {"id": ..., "response": ...} per line; a MIG-Bench id is the
    record's 0-based position in MIG_data.json) and write results.json, report.md and report.html. Settings
    a run folder's run.json records are used unless given here."""
    from univg.evaluation import score_file

    outcome = score_file(**options_for(score_file, args))
    assert outcome.results is not None
    if args.json:
        print(json.dumps(outcome.results, indent=2, ensure_ascii=False))
    else:
        print(_summary(outcome.results))
    print("wrote " + ", ".join(str(p) for p in outcome.paths.values()), file=sys.stderr)
    return 0
