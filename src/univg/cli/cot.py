"""`univg cot ...`: build cold-start chain-of-thought data with any OpenAI-compatible teacher.

- `generate`: chains, a judge's pick and verification per sample, resumable, with cost accounting;
- `review`: a self-contained review page of a task-stratified sample, and folding the decisions back;
- `teacher`: the synthetic world's rule-based teacher served over the same protocol, on loopback;
- `prompts`: a copy of the prompt templates to edit and pass back with `--prompts DIR`.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from univg.cli.options import (
    add_command,
    add_command_group,
    add_defaulted,
    fraction,
    non_negative_number,
    options_for,
    port,
    positive,
    positive_number,
)
from univg.core.errors import UnivgError

if TYPE_CHECKING:
    from univg.cot.runner import GenerateSummary

EXIT_STOPPED = 3  # generate stopped at --max-cost with samples left


def register(subparsers: argparse._SubParsersAction) -> None:
    cot = add_command_group(
        subparsers,
        "cot",
        help="cold-start CoT data: generate with a teacher, review, serve a teacher",
        metavar="COMMAND",
    )
    _register_generate(cot)
    _register_review(cot)
    _register_teacher(cot)
    _register_prompts(cot)


def _register_generate(cot: argparse._SubParsersAction) -> None:
    from univg.cot.runner import GenerateConfig
    from univg.cot.verify import DEFAULT_IOU_THRESHOLD

    parser = add_command(
        cot,
        "generate",
        run_generate,
        epilog="example: univg cot generate --input synth/train.jsonl --out cot/cot.jsonl "
        "--teacher-url http://127.0.0.1:8765/v1 --teacher-model univg-offline-teacher",
    )
    parser.add_argument("--input", required=True, metavar="SAMPLES.jsonl", help="canonical samples")
    parser.add_argument("--out", required=True, metavar="COT.jsonl", help="output (appended to, resumable)")
    parser.add_argument(
        "--teacher-url", required=True, metavar="URL", help="OpenAI-compatible base URL (.../v1)"
    )
    parser.add_argument("--teacher-model", required=True, metavar="NAME", help="model name at that URL")
    parser.add_argument(
        "--api-key-env",
        metavar="VAR",
        help="environment variable holding the API key (default: send none, as vLLM and univg cot teacher need)",
    )
    add_defaulted(parser, GenerateConfig, "--chains", positive, "chains per sample")
    add_defaulted(parser, GenerateConfig, "--concurrency", positive, "samples in flight")
    parser.add_argument(
        "--rpm", type=positive_number, metavar="R", help="at most R requests per minute, evenly spaced"
    )
    parser.add_argument(
        "--max-cost",
        type=non_negative_number,
        metavar="USD",
        help="stop before the total cost of OUT (all runs) could pass this; needs the prices",
    )
    add_defaulted(parser, GenerateConfig, "--price-in", non_negative_number, "USD per million prompt tokens")
    add_defaulted(
        parser, GenerateConfig, "--price-out", non_negative_number, "USD per million completion tokens"
    )
    parser.add_argument(
        "--image-root", metavar="DIR", help="folder image paths start from (default: the input's)"
    )
    parser.add_argument("--limit", type=positive, metavar="N", help="only the first N input samples")
    parser.add_argument(
        "--prompts", metavar="DIR", help="prompt templates (univg cot prompts --out DIR writes a copy)"
    )
    parser.add_argument(
        "--coords",
        choices=("qwen2vl", "normalized"),
        default="qwen2vl",
        help="how boxes are written for the teacher (default: %(default)s, integers 0..1000)",
    )
    parser.add_argument(
        "--iou-threshold",
        type=fraction,
        default=DEFAULT_IOU_THRESHOLD,
        metavar="T",
        help="the kept chain's answer box must overlap the ground truth this much (default: %(default)s)",
    )
    parser.add_argument(
        "--temperature",
        type=non_negative_number,
        default=0.7,
        help="of chain requests (default: %(default)s)",
    )
    parser.add_argument(
        "--max-tokens",
        type=positive,
        default=1024,
        metavar="N",
        help="per chain reply (default: %(default)s)",
    )
    parser.add_argument(
        "--judge-max-tokens",
        type=positive,
        default=64,
        metavar="N",
        help="per judge reply (default: %(default)s)",
    )
    parser.add_argument(
        "--judge-text-only",
        action="store_true",
        help="send the judge the chains without the images (cheaper)",
    )
    parser.add_argument(
        "--timeout",
        type=positive_number,
        default=120.0,
        metavar="S",
        help="per request (default: %(default)s)",
    )
    parser.add_argument(
        "--max-attempts",
        type=positive,
        default=8,
        metavar="N",
        help="attempts per request through 429s, 5xx, time-outs and dropped connections (default: %(default)s)",
    )
    parser.add_argument(
        "--retry-rejected",
        nargs="?",
        const="all",
        metavar="REASONS",
        help="ask again for rejected samples: all of them, or only those with these comma-separated reasons",
    )
    parser.add_argument(
        "--allow-changed-settings",
        action="store_true",
        help="continue an output made with another teacher model, prompts or generation settings",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")


def run_generate(args: argparse.Namespace) -> int:
    """Ask a teacher for reasoning chains, keep the judged best, verify it.

    One line per input sample in OUT: 'verified' lines train with univg train sft --train_files OUT;
    'rejected' ones give a reason. Kill it at any time: the same command resumes, asks only for what is
    missing and reuses replies already paid for. Exit status: 0 done, 1 teacher error, 2 bad input, 3
    stopped at --max-cost."""
    import logging

    from univg.cot.client import RetryPolicy, TeacherFatal
    from univg.cot.runner import GenerateConfig, Generator

    reasons = None
    if args.retry_rejected is not None:
        reasons = (
            ()
            if args.retry_rejected == "all"
            else tuple(r.strip() for r in args.retry_rejected.split(",") if r.strip())
        )
    try:
        # Options named as GenerateConfig's fields pass by name; the rest are read or spelled differently.
        config = GenerateConfig(
            **{**options_for(GenerateConfig, args), "retry_rejected": reasons},
            judge_images=not args.judge_text_only,
            timeout_s=args.timeout,
            retry=RetryPolicy(max_attempts=args.max_attempts),
            progress=not args.no_progress,
        )
        generator = Generator(config)
    except UnivgError:
        raise  # cli.main says it in one line, with the flags spelled as typed
    except ValueError as exc:
        print(f"univg cot generate: {exc}", file=sys.stderr)
        return 2
    for name in ("httpx", "httpx2"):  # one INFO line per request would bury the progress bar
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        summary = generator.run()
    except TeacherFatal as exc:
        print(f"univg cot generate: the teacher refuses every request, stopped: {exc}", file=sys.stderr)
        return 1
    except UnivgError:
        raise
    except ValueError as exc:  # a ledger or output line that is not ours
        print(f"univg cot generate: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(summary.to_json(), indent=2))
    else:
        _print_summary(summary)
    return 0 if summary.complete else EXIT_STOPPED


def _print_summary(summary: GenerateSummary) -> None:
    counts = summary.counts
    print(
        f"{summary.out}: {summary.total} samples, {counts.get('verified', 0)} verified, "
        f"{counts.get('rejected', 0)} rejected, {summary.pending} pending"
        + (f" (stopped: {summary.stopped})" if summary.stopped else "")
    )
    for reason, count in sorted(summary.reasons.items(), key=lambda item: -item[1]):
        print(f"  rejected for {reason}: {count}")
    run = summary.run
    print(
        f"tokens {summary.prompt_tokens} in / {summary.completion_tokens} out, cost ${summary.cost:.4f} (all runs); "
        f"this run: {run.finished} samples, {run.requests} paid replies, {run.reused} reused, ${run.cost:.4f}, "
        f"{run.seconds:.1f} s"
    )
    if run.faults:
        print("  transport faults retried: " + ", ".join(f"{k} {v}" for k, v in sorted(run.faults.items())))
    print(f"summary: {summary.out}.summary.json, {summary.out}.summary.md")


def _register_review(cot: argparse._SubParsersAction) -> None:
    parser = add_command(cot, "review", run_review)
    parser.add_argument("--input", required=True, metavar="COT.jsonl", help="univg cot generate output")
    parser.add_argument(
        "--out", required=True, metavar="FILE", help="review.html, or the reviewed JSONL with --apply"
    )
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument(
        "--sample", type=float, metavar="F", help="share of each task's verified items to review (0..1]"
    )
    mode.add_argument("--apply", metavar="DECISIONS.json", help="decisions exported from the review page")
    parser.add_argument("--seed", type=int, default=0, help="of the sample (default: %(default)s)")
    parser.add_argument(
        "--image-root", metavar="DIR", help="folder image paths start from (default: the input's)"
    )
    parser.add_argument("--force", dest="overwrite", action="store_true", help="replace OUT if it exists")
    parser.add_argument("--json", action="store_true", help="print the --apply report as JSON")


def run_review(args: argparse.Namespace) -> int:
    """Write a review page of a task-stratified sample, or fold its decisions back.

    With --sample: write a self-contained HTML page (images with the ground-truth box, question, chain,
    answer, accept / reject buttons, export of the decisions as JSON). With --apply: write OUT with the
    rejected items marked and report the acceptance rate per task."""
    from univg.cot.review import apply_decisions, write_review_page

    if args.sample is not None:
        page = write_review_page(
            args.input,
            args.out,
            share=args.sample,
            seed=args.seed,
            image_root=args.image_root,
            overwrite=args.overwrite,
        )
        print(
            f"wrote {page.path}: {page.items} items to review ({', '.join(f'{t} {n}' for t, n in page.by_task.items())})"
        )
        return 0
    report = apply_decisions(args.input, args.apply, args.out, overwrite=args.overwrite)
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
        return 0
    print(
        f"wrote {report.out}: {report.accepted} accepted, {report.rejected} rejected of {report.reviewed} reviewed"
    )
    print(report.table())
    return 0


def _register_teacher(cot: argparse._SubParsersAction) -> None:
    parser = add_command(
        cot,
        "teacher",
        run_teacher,
        epilog="example: univg cot teacher --samples synth/train.jsonl --port 8765",
    )
    parser.add_argument(
        "--samples", required=True, metavar="SAMPLES.jsonl", help="the samples it can answer for"
    )
    parser.add_argument("--port", type=port, default=8765, help="(default: %(default)s)")
    parser.add_argument("--host", default="127.0.0.1", help="(default: %(default)s, loopback only)")
    parser.add_argument(
        "--image-root", metavar="DIR", help="folder image paths start from (default: the samples')"
    )
    parser.add_argument("--model", default=None, metavar="NAME", help="the model name it answers to")
    parser.add_argument(
        "--coords", choices=("qwen2vl", "normalized"), default="qwen2vl", help="(default: %(default)s)"
    )
    parser.add_argument(
        "--latency-ms",
        type=non_negative_number,
        default=0.0,
        metavar="MS",
        help="delay every reply, like a remote teacher",
    )
    parser.add_argument("--request-log", metavar="FILE", help="append one JSON line per answered request")


def run_teacher(args: argparse.Namespace) -> int:
    """Serve the synthetic world's rule-based teacher as an OpenAI-compatible endpoint.

    Answers /v1/chat/completions for the samples of a univg data synth file: right chains, its
    deliberately wrong ones (univg data synth --wrong-chains K), leaky and unformatted ones, and a judge.
    Needs the serve extra (FastAPI, uvicorn)."""
    from univg.cot.teacher import DEFAULT_MODEL, OfflineTeacher, create_app
    from univg.data.images import ImageLoadError
    from univg.data.schema import SampleError

    try:
        import uvicorn
    except ImportError:
        print("univg cot teacher: needs the serve extra: pip install 'univg[serve]'", file=sys.stderr)
        return 2
    try:
        teacher = OfflineTeacher(
            args.samples,
            image_root=args.image_root,
            model=args.model or DEFAULT_MODEL,
            coords=args.coords,
            request_log=args.request_log,
        )
    except (OSError, SampleError, ImageLoadError) as exc:
        print(f"univg cot teacher: {exc}", file=sys.stderr)
        return 2
    if not teacher.with_wrong_chains:
        print(
            "univg cot teacher: no sample holds extra.wrong_chains, so every chain is right, leaky or unformatted "
            "(univg data synth --wrong-chains 2 stores wrong ones)",
            file=sys.stderr,
        )
    print(
        f"serving {teacher.samples} samples as model {teacher.model!r} on http://{args.host}:{args.port}/v1 (Ctrl-C stops)"
    )
    sys.stdout.flush()
    uvicorn.run(
        create_app(teacher, latency_s=args.latency_ms / 1000),
        host=args.host,
        port=args.port,
        log_level="warning",
    )
    return 0


def _register_prompts(cot: argparse._SubParsersAction) -> None:
    parser = add_command(cot, "prompts", run_prompts)
    parser.add_argument("--out", required=True, metavar="DIR")
    parser.add_argument(
        "--force", dest="overwrite", action="store_true", help="replace the files if they exist"
    )


def run_prompts(args: argparse.Namespace) -> int:
    """Copy the prompt templates to a folder to edit (then --prompts DIR)."""
    from univg.cot.prompts import copy_prompts

    written = copy_prompts(args.out, overwrite=args.overwrite)
    for path in written:
        print(path)
    return 0
