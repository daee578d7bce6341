"""`univg cot generate`: chains from a teacher, a judge's pick, verification, one line per sample.

Per sample: `chains` chain requests (question, ground-truth box and a task-aware prompt), then one
judge request that picks the best chain (skipped with one chain), then verification of the kept chain
(`univg.cot.verify`). Every sample ends as one line of the output with its `id` and `status`:
"verified" lines are canonical samples whose `cot` is the kept reasoning (so `univg train sft
--train_files OUT` trains on them), "rejected" lines say why in `reason` and `detail`.

Files beside the output ``OUT``:
- ``OUT.run.json``: the settings; a rerun with another teacher model, prompts or generation settings is
  refused unless `allow_changed_settings`.
- ``OUT.ledger.jsonl``: every paid reply, flushed as it arrives (see `univg.cot.accounting`).
- ``OUT.retried.jsonl``: rejected lines taken out by `--retry-rejected`, kept for the record.
- ``OUT.summary.json`` / ``OUT.summary.md``: counts by status, reason and task, tokens, cost, time.
- ``OUT.log``: the raw log of the run (every retry and why).

A run can be killed at any moment: the same command asks the teacher only for what is missing, reuses
the replies already paid for, and every id ends in the output exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from univg.core.boxes import CoordSystem
from univg.core.errors import EXIT_USAGE, UnivgError
from univg.cot.accounting import Budget, BudgetExhausted, Ledger, PaidReply, Prices
from univg.cot.client import (
    RequestRefused,
    RetryPolicy,
    TeacherClient,
    TeacherFatal,
    TeacherUnavailable,
    retry_logger,
)
from univg.cot.judge import JUDGE_UNPARSEABLE, parse_choice
from univg.cot.prompts import TEACHER_COORDS, PromptSet
from univg.cot.request import chat_messages, image_data_url
from univg.cot.verify import DEFAULT_IOU_THRESHOLD, verify_response
from univg.data.files import (
    AppendLog,
    check_input,
    check_output,
    repair_tail,
    write_jsonl_atomic,
    write_text_atomic,
)
from univg.data.images import ImageLoadError
from univg.data.schema import (
    REJECTED,
    STATUS_FIELD,
    VERIFIED,
    GroundingSample,
    SampleError,
    read_records,
    resolve_image,
)

logger = logging.getLogger(__name__)

STATUSES = (VERIFIED, REJECTED)
# Rejection reasons besides the verification checks (univg.cot.verify.CHECKS) and the judge's.
IMAGE = "image"
REQUEST_REFUSED = "request_refused"
TEACHER_UNAVAILABLE = "teacher_unavailable"
# Settings that make a rerun produce other data: a rerun that changes one is refused unless asked.
RESUME_KEYS = (
    "teacher_model",
    "prompts",
    "chains",
    "coords",
    "temperature",
    "max_tokens",
    "judge_temperature",
    "judge_max_tokens",
    "judge_images",
    "iou_threshold",
)
STOPPED_MAX_COST = "max_cost"
IMAGE_ROOT_PROBE = 20  # samples checked for their images before the first request
# This many samples refused in a row (4xx) means the requests are wrong (a parameter, the model), not the
# samples: the run stops instead of writing a rejection for every sample.
REFUSED_IN_A_ROW = 10


class GenerateError(UnivgError, ValueError):
    """Input, output or settings that a run cannot start with; the message says what to change."""

    exit_code = EXIT_USAGE


@dataclass
class GenerateConfig:
    """Everything `univg cot generate` takes; prices are USD per million tokens."""

    input: str
    out: str
    teacher_url: str
    teacher_model: str
    api_key_env: str | None = None  # never a default: a key is sent only to an endpoint it is meant for
    chains: int = 3
    concurrency: int = 8
    rpm: float | None = None
    max_cost: float | None = None
    price_in: float = 0.0
    price_out: float = 0.0
    image_root: str | None = None
    limit: int | None = None
    prompts: str | None = None
    coords: str = CoordSystem.QWEN2VL.value
    iou_threshold: float = DEFAULT_IOU_THRESHOLD
    temperature: float = 0.7
    max_tokens: int = 1024
    judge_temperature: float = 0.0
    judge_max_tokens: int = 64
    judge_images: bool = True
    timeout_s: float = 120.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    retry_rejected: tuple[str, ...] | None = None  # reasons to retry; () retries every rejected line
    allow_changed_settings: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        problems = []
        if self.chains < 1:
            problems.append("--chains must be >= 1")
        if self.concurrency < 1:
            problems.append("--concurrency must be >= 1")
        if self.rpm is not None and self.rpm <= 0:
            problems.append("--rpm must be > 0")
        if self.limit is not None and self.limit < 0:
            problems.append("--limit must be >= 0")
        if self.price_in < 0 or self.price_out < 0:
            problems.append("prices must be >= 0")
        if self.max_cost is not None and (self.max_cost < 0 or (self.price_in == 0 and self.price_out == 0)):
            problems.append(
                "--max-cost needs a limit >= 0 and --price-in / --price-out (USD per million tokens)"
            )
        if not 0 < self.iou_threshold <= 1:
            problems.append("--iou-threshold must be in (0, 1]")
        if CoordSystem.parse(self.coords).value not in TEACHER_COORDS:
            problems.append(f"--coords must be one of {', '.join(TEACHER_COORDS)}")
        if self.max_tokens < 1 or self.judge_max_tokens < 1:
            problems.append("token limits must be >= 1")
        if problems:
            raise GenerateError("; ".join(problems))

    @property
    def prices(self) -> Prices:
        return Prices(self.price_in, self.price_out)


def sidecar(out: str | os.PathLike[str], suffix: str) -> Path:
    """A file beside the output: ``OUT.suffix``."""
    path = Path(out)
    return path.with_name(f"{path.name}.{suffix}")


@dataclass
class RunStats:
    """What this invocation did (the file totals are in the summary)."""

    finished: int = 0
    requests: int = 0  # replies paid in this run
    reused: int = 0  # replies taken from the ledger instead of asked again
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    attempts: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass
class GenerateSummary:
    """The state of an output file after a run: counts, money and time."""

    out: str
    teacher_model: str
    total: int
    counts: dict[str, int]
    reasons: dict[str, int]
    by_task: dict[str, dict[str, int]]
    pending: int
    prompt_tokens: int
    completion_tokens: int
    cost: float
    run: RunStats
    stopped: str | None = None

    @property
    def complete(self) -> bool:
        return self.pending == 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def to_markdown(self) -> str:
        lines = [
            f"# CoT generation: {self.out}",
            "",
            f"Teacher `{self.teacher_model}`; {self.total} samples: "
            + ", ".join(f"{self.counts.get(s, 0)} {s}" for s in STATUSES)
            + f", {self.pending} pending"
            + (f" (stopped: {self.stopped})" if self.stopped else ""),
            "",
            "| task | verified | rejected | acceptance |",
            "|---|---|---|---|",
        ]
        for task, counts in sorted(self.by_task.items()):
            done = counts.get(VERIFIED, 0) + counts.get(REJECTED, 0)
            rate = f"{100 * counts.get(VERIFIED, 0) / done:.1f}%" if done else "-"
            lines.append(f"| {task} | {counts.get(VERIFIED, 0)} | {counts.get(REJECTED, 0)} | {rate} |")
        lines += ["", "| rejection reason | samples |", "|---|---|"]
        lines += [f"| {reason} | {count} |" for reason, count in sorted(self.reasons.items())] or [
            "| - | 0 |"
        ]
        run = self.run
        lines += [
            "",
            f"Tokens (all runs): {self.prompt_tokens} in, {self.completion_tokens} out; cost ${self.cost:.4f}.",
            f"This run: {run.finished} samples in {run.seconds:.1f} s, {run.requests} paid replies "
            f"({run.reused} reused from the ledger), {run.attempts} attempts, ${run.cost:.4f}; transport "
            f"faults retried: {dict(run.faults) or 'none'}.",
            "",
        ]
        return "\n".join(lines)


def _settings(config: GenerateConfig, prompts: PromptSet) -> dict[str, Any]:
    return {
        "teacher_model": config.teacher_model,
        "prompts": prompts.fingerprint,
        "chains": config.chains,
        "coords": CoordSystem.parse(config.coords).value,
        "temperature": config.temperature,
        "max_tokens": config.max_tokens,
        "judge_temperature": config.judge_temperature,
        "judge_max_tokens": config.judge_max_tokens,
        "judge_images": config.judge_images,
        "iou_threshold": config.iou_threshold,
    }


def _fingerprint(settings: dict[str, Any]) -> str:
    """The settings that shape the teacher's replies: ledger replies are reused only under the same ones."""
    shaping = {k: v for k, v in settings.items() if k != "iou_threshold"}
    return hashlib.sha256(json.dumps(shaping, sort_keys=True).encode()).hexdigest()[:16]


def request_seed(sample_id: str, attempt: int, index: int) -> int:
    """A fixed seed per chain: reruns ask the same questions, retries ask new ones."""
    return int(hashlib.sha256(f"{sample_id}/{attempt}/{index}".encode()).hexdigest()[:8], 16)


def read_input(config: GenerateConfig) -> list[GroundingSample]:
    """The input samples (first `limit`), checked: a bad record or a repeated id is a `SampleError`
    naming its line (bad data: exit status 1), a missing file a `UsageError`."""
    path = check_input(config.input, option="input")  # canonical JSONL: univg data convert or synth
    samples: list[GroundingSample] = []
    seen: dict[str, int] = {}
    for number, record in read_records(path):
        if config.limit is not None and len(samples) >= config.limit:
            break
        sample = GroundingSample.from_json(record, path=str(path), index=f"line {number}")
        problem = sample.problem()
        if problem is not None:
            raise SampleError(
                f"{problem[1]} (sample {sample.id})",
                path=path,
                record=f"line {number}",
                field_name=problem[0],
            )
        if sample.id in seen:
            raise SampleError(
                f"{sample.id!r} repeats the id of line {seen[sample.id]}",
                path=path,
                record=f"line {number}",
                field_name="id",
            )
        seen[sample.id] = number
        samples.append(sample)
    return samples


def _path_from(folder: Path, image: Path) -> str:
    """`image` relative to `folder` when it lies inside it, else absolute."""
    absolute = image.resolve()
    return str(absolute.relative_to(folder)) if absolute.is_relative_to(folder) else str(absolute)


def read_output(path: Path) -> dict[str, dict[str, Any]]:
    """The finished lines of an output file by id (a line cut by a kill is dropped first)."""
    if repair_tail(path):
        logger.warning("%s: dropped a last line cut short by an interrupted run", path)
    if not path.exists():
        return {}
    records: dict[str, dict[str, Any]] = {}
    try:
        for number, record in read_records(path):
            if not isinstance(record, dict) or record.get(STATUS_FIELD) not in STATUSES or "id" not in record:
                raise GenerateError(
                    f"{path}: line {number} is not a univg cot generate line (needs id and status); use another --out"
                )
            if record["id"] in records:
                raise GenerateError(f"{path}: line {number}: id {record['id']!r} is already in the file")
            records[str(record["id"])] = record
    except SampleError as exc:
        raise GenerateError(f"{exc}; use another --out") from None
    return records


def _count_attempts(path: Path) -> Counter[str]:
    """How many times each id was retried: one archived line per retry."""
    attempts: Counter[str] = Counter()
    if path.exists():
        repair_tail(path)
        for _, record in read_records(path):
            attempts[str(record.get("id"))] += 1
    return attempts


class Generator:
    """One run of `univg cot generate` over an output file (see the module docstring)."""

    def __init__(self, config: GenerateConfig) -> None:
        self.config = config
        self.out = check_output(config.out, resumable=True, option="out")  # appended to: a rerun resumes
        self.prompts = PromptSet.load(config.prompts)
        self.coords = CoordSystem.parse(config.coords)
        self.samples = read_input(config)
        self.image_root = Path(config.image_root) if config.image_root else Path(config.input).parent
        self.settings = _settings(config, self.prompts)
        self.fingerprint = _fingerprint(self.settings)
        self.api_key = self._api_key()
        self.stats = RunStats()
        self.stopped: str | None = None
        self.client: TeacherClient | None = None
        self._warned_usage = False

    def _api_key(self) -> str | None:
        name = self.config.api_key_env
        if name is None:
            return None
        value = os.environ.get(name)
        if not value:
            raise GenerateError(f"--api-key-env {name}: the environment variable {name} is not set")
        return value

    # --- the output file and its companions ------------------------------------------------------

    def _check_settings(self, has_lines: bool) -> None:
        path = sidecar(self.out, "run.json")
        try:
            previous = json.loads(path.read_text(encoding="utf-8")) if path.exists() else None
        except (ValueError, UnicodeDecodeError) as exc:
            raise GenerateError(
                f"{path}: not the JSON univg cot generate writes ({exc}); use another --out"
            ) from None
        if previous is not None and has_lines:
            old = previous.get("settings", {})
            changed = [k for k in RESUME_KEYS if old.get(k) != self.settings.get(k)]
            if changed and not self.config.allow_changed_settings:
                details = "; ".join(f"{k}: {old.get(k)!r} -> {self.settings.get(k)!r}" for k in changed)
                raise GenerateError(
                    f"{self.out} was generated with other settings ({details}); use another --out, or "
                    "--allow-changed-settings to continue with the new ones"
                )
        runs = [
            *(previous or {}).get("runs", []),
            {
                "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "teacher_url": self.config.teacher_url,
                **self.settings,
            },
        ]
        record = {"input": str(self.config.input), "settings": self.settings, "runs": runs}
        write_text_atomic(path, json.dumps(record, indent=2) + "\n")

    def _take_out_rejected(self, records: dict[str, dict[str, Any]]) -> None:
        """--retry-rejected: archive the chosen rejected lines and rewrite the output without them."""
        wanted = self.config.retry_rejected
        if wanted is None:
            return
        retried = [
            r
            for r in records.values()
            if r[STATUS_FIELD] == REJECTED and (not wanted or r.get("reason") in wanted)
        ]
        if not retried:
            return
        archive = AppendLog(sidecar(self.out, "retried.jsonl"))
        for record in retried:
            archive.append(record)
        archive.close()
        for record in retried:
            del records[record["id"]]
        write_jsonl_atomic(self.out, list(records.values()))
        logger.info("retrying %d rejected samples (archived in %s)", len(retried), archive.path)

    def _check_image_root(self, pending: list[GroundingSample]) -> None:
        """Refuse to start when none of the first pending samples has its images: the root is wrong."""
        probe = pending[:IMAGE_ROOT_PROBE]
        missing = [
            (s, p) for s in probe for p in s.images[:1] if not resolve_image(p, self.image_root).exists()
        ]
        if probe and len(missing) == len(probe):
            sample, path = missing[0]
            raise GenerateError(
                f"{self.config.input}: sample {sample.id}: image {path!r} not found under {self.image_root} "
                f"(nor those of the next {len(probe) - 1} samples); pass --image-root DIR"
            )

    # --- one sample -------------------------------------------------------------------------------

    async def _ask(
        self,
        sample: GroundingSample,
        attempt: int,
        kind: str,
        index: int,
        messages: list[dict[str, Any]],
        reused: dict[tuple[str, int], PaidReply],
    ) -> PaidReply:
        if (kind, index) in reused:
            self.stats.reused += 1
            return reused[(kind, index)]
        judge = kind == "judge"
        max_tokens = self.config.judge_max_tokens if judge else self.config.max_tokens
        text_chars = sum(len(str(part.get("text", ""))) for m in messages for part in _parts(m))
        images = sum(1 for m in messages for part in _parts(m) if part.get("type") == "image_url")
        estimate = self.budget.estimate(kind, text_chars, images, max_tokens)
        reservation = await self.budget.reserve(estimate)
        try:
            reply = await self.client.complete(
                messages,
                max_tokens=max_tokens,
                temperature=self.config.judge_temperature if judge else self.config.temperature,
                seed=request_seed(sample.id, attempt, index + (self.config.chains if judge else 0)),
            )
        except BaseException:
            await self.budget.release(reservation)
            raise
        reported = reply.prompt_tokens is not None and reply.completion_tokens is not None
        if not reported and not self._warned_usage:
            logger.warning("the teacher reports no token usage: each reply is charged its worst case")
            self._warned_usage = True
        prompt_tokens = reply.prompt_tokens or 0
        completion_tokens = reply.completion_tokens or 0
        cost = self.config.prices.cost(prompt_tokens, completion_tokens) if reported else estimate
        paid = PaidReply(
            sample_id=sample.id,
            attempt=attempt,
            settings=self.fingerprint,
            kind=kind,
            index=index,
            text=reply.text,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            cost=cost,
            usage_reported=reported,
        )
        self.ledger.append(paid)
        await self.budget.settle(reservation, kind, prompt_tokens, cost)
        self.stats.requests += 1
        self.stats.prompt_tokens += prompt_tokens
        self.stats.completion_tokens += completion_tokens
        self.stats.cost += cost
        return paid

    async def _process(self, sample: GroundingSample, attempt: int) -> dict[str, Any]:
        """The output line of one sample; raises `BudgetExhausted` when it cannot be finished within --max-cost."""
        try:
            urls = [image_data_url(resolve_image(path, self.image_root)) for path in sample.images]
        except ImageLoadError as exc:
            return self._line(sample, attempt, REJECTED, IMAGE, str(exc))
        reused = self.ledger.reusable(sample.id, attempt, self.fingerprint)
        chain_messages = chat_messages(
            self.prompts.system, self.prompts.chain_text(sample, self.coords), urls
        )
        outcomes = await asyncio.gather(
            *(
                self._ask(sample, attempt, "chain", i, chain_messages, reused)
                for i in range(self.config.chains)
            ),
            return_exceptions=True,
        )
        failure = self._failure(sample, attempt, outcomes)
        if failure is not None:
            return failure
        chains: list[PaidReply] = list(outcomes)  # type: ignore[arg-type]
        responses = [reply.text for reply in chains]
        paid = list(chains)
        judge_text = None
        if len(chains) == 1:
            chosen: int | None = 0
        else:
            judge_messages = chat_messages(
                self.prompts.system,
                self.prompts.judge_text(sample, self.coords, responses),
                urls if self.config.judge_images else [],
            )
            judged = await asyncio.gather(
                self._ask(sample, attempt, "judge", 0, judge_messages, reused), return_exceptions=True
            )
            failure = self._failure(sample, attempt, judged, responses=responses, paid=paid)
            if failure is not None:
                return failure
            judge_text = judged[0].text  # type: ignore[union-attr]
            paid.append(judged[0])  # type: ignore[arg-type]
            chosen = parse_choice(judge_text, len(chains))
        verdicts = [
            verify_response(text, sample, coords=self.coords, iou_threshold=self.config.iou_threshold)
            for text in responses
        ]
        generation = {
            "teacher": self.config.teacher_model,
            "attempt": attempt,
            "chosen": chosen,
            "judge": judge_text,
            "candidates": [
                {"response": text, **v.to_json()} for text, v in zip(responses, verdicts, strict=True)
            ],
            **_usage(paid),
        }
        if chosen is None:
            detail = f"the judge named no candidate 1..{len(chains)}: {judge_text!r:.200}"
            return self._line(sample, attempt, REJECTED, JUDGE_UNPARSEABLE, detail, generation)
        verdict = verdicts[chosen]
        generation.update(answer_box=verdict.to_json()["answer_box"], iou=round(verdict.iou, 4))
        if not verdict.ok:
            return self._line(sample, attempt, REJECTED, verdict.reason, verdict.detail, generation)
        return self._line(sample, attempt, VERIFIED, None, None, generation, cot=verdict.think)

    def _failure(
        self,
        sample: GroundingSample,
        attempt: int,
        outcomes: list[Any],
        responses: list[str] | None = None,
        paid: list[PaidReply] | None = None,
    ) -> dict[str, Any] | None:
        """The line for requests that failed, or None when all succeeded.

        A fatal teacher error or an exhausted budget is raised: the first stops the run, the second
        leaves the sample for a rerun.
        """
        errors = [o for o in outcomes if isinstance(o, BaseException)]
        if not errors:
            return None
        for error in errors:
            if not isinstance(error, (TeacherFatal, BudgetExhausted, RequestRefused, TeacherUnavailable)):
                raise error
        fatal = next((e for e in errors if isinstance(e, TeacherFatal)), None)
        if fatal is not None:
            raise fatal
        exhausted = next((e for e in errors if isinstance(e, BudgetExhausted)), None)
        if exhausted is not None:
            raise exhausted
        paid = (paid or []) + [o for o in outcomes if isinstance(o, PaidReply)]
        generation = {"teacher": self.config.teacher_model, "attempt": attempt, **_usage(paid)}
        if responses:
            generation["candidates"] = [{"response": text} for text in responses]
        refused = next((e for e in errors if isinstance(e, RequestRefused)), None)
        if refused is not None:
            return self._line(sample, attempt, REJECTED, REQUEST_REFUSED, str(refused), generation)
        return self._line(sample, attempt, REJECTED, TEACHER_UNAVAILABLE, str(errors[0]), generation)

    def _line(
        self,
        sample: GroundingSample,
        attempt: int,
        status: str,
        reason: str | None,
        detail: str | None,
        generation: dict[str, Any] | None = None,
        cot: str | None = None,
    ) -> dict[str, Any]:
        """An output line: the sample with its status; image paths are relative to the output's folder
        when the images are inside it, else absolute (a path climbing out with ``..`` would be refused
        by every reader of the output: `resolve_image`)."""
        folder = self.out.resolve().parent
        images = [
            path if Path(path).is_absolute() else _path_from(folder, resolve_image(path, self.image_root))
            for path in sample.images
        ]
        extra = {
            **sample.extra,
            "cot_generation": generation or {"teacher": self.config.teacher_model, "attempt": attempt},
        }
        record = replace(sample, images=images, cot=cot, extra=extra).to_json()
        head: dict[str, Any] = {"id": sample.id, STATUS_FIELD: status}
        if reason is not None:
            head.update(reason=reason, detail=detail)
        return {**head, **record}

    # --- the run ----------------------------------------------------------------------------------

    def _summary(self, records: dict[str, dict[str, Any]]) -> GenerateSummary:
        wanted = {s.id: s.task for s in self.samples}
        counts: Counter[str] = Counter()
        reasons: Counter[str] = Counter()
        by_task: dict[str, Counter[str]] = {}
        for record in records.values():
            counts[record[STATUS_FIELD]] += 1
            if record[STATUS_FIELD] == REJECTED:
                reasons[str(record.get("reason"))] += 1
            by_task.setdefault(str(record.get("task")), Counter())[record[STATUS_FIELD]] += 1
        totals = self.ledger.totals
        if self.client is not None:
            self.stats.faults = dict(self.client.faults)
            self.stats.attempts = self.client.attempts
        return GenerateSummary(
            out=str(self.out),
            teacher_model=self.config.teacher_model,
            total=len(self.samples),
            counts=dict(counts),
            reasons=dict(reasons),
            by_task={task: dict(c) for task, c in by_task.items()},
            pending=sum(1 for sample_id in wanted if sample_id not in records),
            prompt_tokens=totals.prompt_tokens,
            completion_tokens=totals.completion_tokens,
            cost=totals.cost,
            run=self.stats,
            stopped=self.stopped,
        )

    def _write_summary(self, summary: GenerateSummary) -> None:
        write_text_atomic(sidecar(self.out, "summary.json"), json.dumps(summary.to_json(), indent=2) + "\n")
        write_text_atomic(sidecar(self.out, "summary.md"), summary.to_markdown())

    def run(self) -> GenerateSummary:
        """Generate what is missing from the output; returns (and writes) the summary."""
        self.out.parent.mkdir(parents=True, exist_ok=True)
        records = read_output(self.out)
        self._check_settings(bool(records))
        unknown = [i for i in records if i not in {s.id for s in self.samples}]
        if unknown:
            logger.warning(
                "%s holds %d ids that are not in the input (kept), e.g. %s",
                self.out,
                len(unknown),
                unknown[0],
            )
        self._take_out_rejected(records)
        attempts = _count_attempts(sidecar(self.out, "retried.jsonl"))
        pending = [s for s in self.samples if s.id not in records]
        self._check_image_root(pending)
        self.ledger = Ledger(sidecar(self.out, "ledger.jsonl"))
        started = time.perf_counter()
        with _run_log(sidecar(self.out, "log")):
            try:
                asyncio.run(self._run(pending, attempts, records))
            except KeyboardInterrupt:
                self.stopped = "interrupted"
                raise
            finally:
                self.stats.seconds = time.perf_counter() - started
                self.ledger.close()
                summary = self._summary(records)
                self._write_summary(summary)
        return summary

    async def _run(
        self, pending: list[GroundingSample], attempts: Counter[str], records: dict[str, dict[str, Any]]
    ) -> None:
        from tqdm import tqdm

        self.budget = Budget(self.config.prices, self.config.max_cost, spent=self.ledger.totals.cost)
        self.client = TeacherClient(
            self.config.teacher_url,
            self.config.teacher_model,
            api_key=self.api_key,
            timeout_s=self.config.timeout_s,
            retry=self.config.retry,
            rpm=self.config.rpm,
        )
        output = AppendLog(self.out)
        counts = Counter(r[STATUS_FIELD] for r in records.values())
        bar = tqdm(
            total=len(self.samples),
            initial=len(self.samples) - len(pending),
            unit="sample",
            desc="cot generate",
            disable=not self.config.progress,
            dynamic_ncols=True,
        )
        queue: Iterator[GroundingSample] = iter(pending)
        stop = asyncio.Event()

        refused = 0

        async def worker() -> None:
            nonlocal refused
            for sample in queue:
                if stop.is_set():
                    return
                try:
                    line = await self._process(sample, attempts[sample.id])
                except TeacherFatal:
                    stop.set()
                    raise
                except BudgetExhausted:  # left for a rerun with a higher --max-cost (its replies are kept)
                    self.stopped = STOPPED_MAX_COST
                    stop.set()
                    continue
                output.append(line)
                records[sample.id] = line
                refused = refused + 1 if line.get("reason") == REQUEST_REFUSED else 0
                if refused == REFUSED_IN_A_ROW:
                    stop.set()
                    raise TeacherFatal(
                        f"{refused} samples in a row refused ({line['detail']}); fix the request and rerun with "
                        f"--retry-rejected {REQUEST_REFUSED}"
                    )
                counts[line[STATUS_FIELD]] += 1
                self.stats.finished += 1
                bar.update(1)
                shown = {
                    "verified": counts[VERIFIED],
                    "rejected": counts[REJECTED],
                    "cost": f"${self.budget.spent:.4f}",
                }
                bar.set_postfix(shown, refresh=False)  # a dict keeps this order (keywords are sorted)

        try:
            workers = [asyncio.ensure_future(worker()) for _ in range(self.config.concurrency)]
            results = await asyncio.gather(*workers, return_exceptions=True)
            fatal = next((r for r in results if isinstance(r, BaseException)), None)
            if fatal is not None:
                self.stopped = f"teacher error: {fatal}"
                raise fatal
        finally:
            bar.close()
            output.close()
            await self.client.close()


@contextlib.contextmanager
def _run_log(path: Path) -> Iterator[None]:
    """During a run, univg.cot's INFO messages and every retry also go to ``OUT.log`` (retries only there)."""
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    package, retries = logging.getLogger("univg.cot"), retry_logger
    saved = (package.level, retries.level, retries.propagate)
    package.addHandler(handler)
    package.setLevel(min(package.getEffectiveLevel(), logging.INFO))
    retries.addHandler(handler)
    retries.setLevel(logging.INFO)
    retries.propagate = False
    try:
        yield
    finally:
        package.removeHandler(handler)
        retries.removeHandler(handler)
        package.setLevel(saved[0])
        retries.setLevel(saved[1])
        retries.propagate = saved[2]
        handler.close()


def _parts(message: dict[str, Any]) -> list[dict[str, Any]]:
    content = message.get("content")
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [part for part in content or [] if isinstance(part, dict)]


def _usage(paid: list[PaidReply]) -> dict[str, Any]:
    return {
        "requests": len(paid),
        "prompt_tokens": sum(r.prompt_tokens for r in paid),
        "completion_tokens": sum(r.completion_tokens for r in paid),
        "cost": round(sum(r.cost for r in paid), 8),
    }


def generate(config: GenerateConfig) -> GenerateSummary:
    """Run `univg cot generate` from Python; raises `GenerateError` for input it cannot start with."""
    return Generator(config).run()
