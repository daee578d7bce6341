"""The two entry points: `run_evaluation` (generate, resumably, then score) and `score_file`.

A run appends each answer to ``OUT/predictions.jsonl`` as soon as its batch is generated and, when
started again, skips the ids already answered, so it can be killed at any point. Under
``accelerate launch`` or ``torchrun`` every rank takes an interleaved share of the pending samples
and appends to its own ``predictions.rankR.jsonl``; rank 0 merges them and writes the reports.
``OUT/run.json`` records how the predictions were made; a rerun with a different model, data or
decoding refuses to mix its answers into them.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from univg.core.boxes import CoordSystem
from univg.core.errors import UsageError
from univg.core.parsing import PARSE_MODES, ParseMode
from univg.core.resize import DEFAULT_MAX_PIXELS, DEFAULT_MIN_PIXELS
from univg.data.files import AppendLog, check_input, check_output, write_json_atomic
from univg.data.prompts import PromptStyle, is_simple_reference
from univg.data.schema import GroundingSample
from univg.evaluation.benchmark_report import build_results, write_reports
from univg.evaluation.benchmarks import BenchmarkData, load_benchmark
from univg.evaluation.predictions import (
    PREDICTIONS_FILE,
    RANK_FILE_GLOB,
    merge_rank_files,
    rank_file,
    read_predictions,
)
from univg.evaluation.provenance import file_sha256, provenance
from univg.evaluation.scoring import require_sizes, score_predictions
from univg.inference.predictor import GenerationOptions, Grounder, Predictor, Request
from univg.models.checkpoint import ADAPTER_CONFIG_FILE, checkpoint_sha256, read_json_file

logger = logging.getLogger(__name__)

RUN_FILE = "run.json"
# Settings that change what the model answers: a resumed run must match them exactly. The model and
# the adapter are compared by what they are (a hash of their files), not by their paths.
RESUME_KEYS = (
    "benchmark",
    "data_sha256",
    "model_identity",
    "adapter_identity",
    "style",
    "generation",
    "max_pixels",
    "min_pixels",
)
# Ranks wait for each other at the end; a slow shard must not time the others out.
BARRIER_TIMEOUT = timedelta(hours=24)


class ResumeMismatchError(UsageError):
    """The output folder holds predictions made differently (another model, data or decoding)."""


@dataclass
class RunConfig:
    """Everything `univg eval run` takes. Styles, parse mode and coordinates default sensibly."""

    benchmark: str
    data: str
    model: str
    out: str
    image_root: str | None = None
    split: str | None = None
    tasks: list[str] | None = None
    limit: int | None = None  # at most this many samples per task (the first ones)
    batch_size: int = 32  # a batch that does not fit is split (Predictor), so large costs nothing
    length_sort_window: int = 8  # batches sorted by prompt length together (1: the data's order)
    fast_decode: bool = True  # univg's decoding loop for Qwen2-VL models (the same answers as generate's)
    style: str | None = None  # univg or plain; default: the benchmark's (UniVG-R1's prompt)
    parse: ParseMode | None = None  # primary parse mode; default answer (univg) / first (plain)
    max_new_tokens: int = 256
    max_pixels: int = DEFAULT_MAX_PIXELS
    min_pixels: int = DEFAULT_MIN_PIXELS
    dtype: str = "auto"
    device_map: str | None = None
    attn_implementation: str | None = None
    adapter: str | None = None
    examples: int = 3  # worst predictions per task drawn into report.html
    progress: bool = True
    # An OpenAI-compatible base URL: generate there, `model` being the endpoint's model name.
    endpoint: str | None = None
    api_key_env: str | None = None  # the environment variable holding the endpoint's API key
    concurrency: int = 8  # endpoint requests in flight
    coords: str | None = None  # how the endpoint's model writes boxes (default qwen2vl)


@dataclass
class Outcome:
    """What a run or a scoring produced; `results` is None on ranks other than 0."""

    results: dict[str, Any] | None
    paths: dict[str, Path] = field(default_factory=dict)
    generated: int = 0  # predictions made by this invocation (all ranks)
    skipped: int = 0  # samples already answered by an earlier invocation
    seconds: float = 0.0
    generated_tokens: int = 0

    @property
    def samples_per_s(self) -> float:
        return self.generated / self.seconds if self.seconds > 0 else 0.0

    @property
    def tokens_per_s(self) -> float:
        return self.generated_tokens / self.seconds if self.seconds > 0 else 0.0


def read_run_info(folder: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The run.json of a run folder (how its predictions were made), or None."""
    path = Path(folder) / RUN_FILE
    if not path.is_file():
        return None
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(
            f"unreadable ({exc}), so how its predictions were made is unknown",
            path=path,
            option="out",
            hint="use a new {option} folder",
        ) from None
    if not isinstance(info, dict):
        raise UsageError(
            "is not a univg eval run record", path=path, option="out", hint="use a new {option} folder"
        )
    return info


def _model_id(model: str) -> str:
    """A local checkpoint as its absolute path (the same model however it was typed), else the hub id."""
    return str(Path(model).resolve()) if Path(model).exists() else model


def model_identity(model: str, endpoint: str | None = None) -> dict[str, Any]:
    """What a model is, for resuming: a local checkpoint's hash (copies match, a replaced checkpoint at
    the same path does not); an endpoint's URL and model name, a hub id's name (all that is known of
    them before they answer). An adapter folder is known with the base model it names."""
    if endpoint is not None:
        return {"endpoint": endpoint, "model": model}
    folder = Path(model)
    if not folder.is_dir():
        return {"hub_id": model}
    started = time.perf_counter()
    identity: dict[str, Any] = {"sha256": checkpoint_sha256(folder)}
    logger.info(
        "identified %s by its files (sha256 %s, %.1f s)",
        model,
        identity["sha256"][:12],
        time.perf_counter() - started,
    )
    if (folder / ADAPTER_CONFIG_FILE).is_file() and not (folder / "config.json").is_file():
        base = read_json_file(folder / ADAPTER_CONFIG_FILE).get("base_model_name_or_path")
        if base:
            identity["base"] = model_identity(str(base))
    return identity


def _model_label(model: str, adapter: str | None) -> str:
    name = Path(model).name if Path(model).exists() else model
    return f"{name} + {Path(adapter).name}" if adapter else name


class _Ranks:
    """This process's place in a data-parallel launch (one process when launched plainly)."""

    def __init__(self) -> None:
        import torch
        from accelerate import PartialState

        world = int(os.environ.get("WORLD_SIZE", "1"))
        cpu = os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes")
        cpu = cpu or not torch.cuda.is_available()
        kwargs: dict[str, Any] = {"timeout": BARRIER_TIMEOUT} if world > 1 else {}
        self.owns_group = not (torch.distributed.is_available() and torch.distributed.is_initialized())
        self.state = PartialState(cpu=cpu, **kwargs)
        self.rank = self.state.process_index
        self.world = self.state.num_processes
        self.device = self.state.device

    def close(self) -> None:
        """Wait for every rank, then end the process group if this run started it."""
        if self.world > 1:
            self.barrier()
            if self.owns_group:
                self.state.destroy_process_group()

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        self.state.wait_for_everyone()

    def total(self, value: int) -> int:
        """`value` summed over all ranks."""
        if self.world == 1:
            return value
        import torch
        import torch.distributed as dist

        tensor = torch.tensor([value], dtype=torch.long, device=self.device)
        dist.all_reduce(tensor)
        return int(tensor.item())


def _check_resume(previous: dict[str, Any] | None, current: dict[str, Any], out: Path) -> None:
    """Refuse to add answers to predictions made by another model, data or decoding, or by an
    unknown one (predictions without run.json)."""
    files = [out / PREDICTIONS_FILE, *out.glob(RANK_FILE_GLOB)]
    if not any(path.is_file() and path.stat().st_size > 0 for path in files):
        return  # nothing answered yet (an empty file is what a run stopped before its first answer leaves)
    if previous is None:
        raise ResumeMismatchError(
            f"holds predictions but no {RUN_FILE}, so which model made them is unknown",
            path=out,
            option="out",
            hint="use a new {option} folder (or move the predictions away)",
        )
    changed = [k for k in RESUME_KEYS if previous.get(k) != current.get(k)]
    if changed:
        details = "; ".join(f"{k}: {previous.get(k)!r} -> {current.get(k)!r}" for k in changed)
        if "model_identity" in changed and previous.get("model") == current.get("model"):
            details += " (the checkpoint at that path is not the one that made the predictions)"
        raise ResumeMismatchError(
            f"holds predictions made with other settings ({details})",
            path=out,
            option="out",
            hint="use a new {option} folder",
        )


def _requests(samples: list[GroundingSample]) -> list[Request]:
    return [
        Request(question=s.question, images=list(s.images), id=s.id, simple_reference=is_simple_reference(s))
        for s in samples
    ]


def _answer(
    predictor: Grounder, samples: list[GroundingSample], task_of: dict[str, str]
) -> Iterator[dict[str, Any]]:
    """Prediction records for a window of batches; a request that cannot run becomes an error record on
    its own (a window that fails is retried batch by batch, a batch that fails request by request)."""
    try:
        predictions = predictor.predict(_requests(samples))
    except ValueError as exc:
        if len(samples) > 1:
            step = predictor.batch_size if len(samples) > predictor.batch_size else 1
            for begin in range(0, len(samples), step):
                yield from _answer(predictor, samples[begin : begin + step], task_of)
            return
        yield {"id": samples[0].id, "task": task_of[samples[0].id], "response": "", "error": str(exc)}
        return
    for sample, prediction in zip(samples, predictions, strict=True):
        yield {
            "id": sample.id,
            "task": task_of[sample.id],
            "response": prediction.text,
            "prompt_tokens": prediction.prompt_tokens,
            "generated_tokens": prediction.generated_tokens,
            "batch_size": prediction.timing.batch_size,
            "batch_seconds": round(prediction.timing.total_s, 4),
        }


def _check_images(data: BenchmarkData) -> None:
    """Fail early, not once per sample, when images are not where the data says."""
    if data.samples and not Path(data.samples[0].target_path).is_file():
        raise UsageError(
            f"image {data.samples[0].target_path!r} not found",
            path=data.path,
            record=f"sample {data.samples[0].id}",
            option="image_root",
            hint="pass {option}, the folder the data's image paths are relative to",
        )


def _data_settings(data: BenchmarkData) -> dict[str, Any]:
    """Which file and which of its samples: the part run.json and results.json share."""
    return {
        "benchmark": data.benchmark.name,
        "data": str(data.path.resolve()),
        "data_sha256": file_sha256(data.path),
        "image_root": str(data.image_root.resolve()) if data.image_root else None,
        "split": data.split,
        "tasks": list(data.tasks_selected) if data.tasks_selected else None,
        "limit": data.limit,
    }


@dataclass
class _Plan:
    """What a run will do, settled before any model loads: the data, the prompt, the decoding."""

    config: RunConfig
    data: BenchmarkData
    style: PromptStyle
    parse: ParseMode
    generation: GenerationOptions
    info: dict[str, Any]  # run.json: every setting that shaped the predictions

    @property
    def out(self) -> Path:
        return Path(self.config.out)


def _plan(config: RunConfig) -> _Plan:
    """Check the config, read the benchmark and refuse to resume predictions made differently."""
    if config.batch_size < 1:
        raise UsageError(f"{{option}} must be at least 1, got {config.batch_size}", option="batch_size")
    if config.length_sort_window < 1:
        raise UsageError(
            f"{{option}} must be at least 1, got {config.length_sort_window}", option="length_sort_window"
        )
    out = check_output(config.out, kind="folder", resumable=True, option="out")
    data = load_benchmark(
        config.benchmark,
        config.data,
        image_root=config.image_root,
        split=config.split,
        tasks=config.tasks,
        limit=config.limit,
    )
    _check_images(data)
    style = PromptStyle(config.style) if config.style else data.benchmark.style
    parse: ParseMode = config.parse or ("answer" if style is PromptStyle.UNIVG else "first")
    if parse not in PARSE_MODES:
        raise UsageError(f"{{option}} {parse!r} is not one of {PARSE_MODES}", option="parse")
    generation = GenerationOptions(max_new_tokens=config.max_new_tokens)
    info = {
        **_data_settings(data),
        "model": config.model if config.endpoint else _model_id(config.model),
        "model_identity": model_identity(config.model, config.endpoint),
        "endpoint": config.endpoint,
        "adapter": _model_id(config.adapter) if config.adapter else None,
        "adapter_identity": model_identity(config.adapter) if config.adapter else None,
        "style": style.value,
        "parse": parse,
        "generation": asdict(generation),
        "max_pixels": config.max_pixels,
        "min_pixels": config.min_pixels,
        "batch_size": config.batch_size,
        "dtype": config.dtype,
        "device_map": config.device_map,
        "attn_implementation": config.attn_implementation,
        "score_frame": data.benchmark.score_frame,
    }
    _check_resume(read_run_info(out), info, out)
    return _Plan(config, data, style, parse, generation, info)


def _pending_share(plan: _Plan, ranks: _Ranks) -> tuple[list[GroundingSample], int]:
    """This rank's share of the samples not answered yet, and how many were answered before."""
    out = plan.out
    if ranks.main:
        out.mkdir(parents=True, exist_ok=True)
        merge_rank_files(out)  # answers a killed data-parallel run left in its rank files
    ranks.barrier()
    done = read_predictions(out / PREDICTIONS_FILE).done_ids()
    pending = [s for s in plan.data.samples if s.id not in done]
    if ranks.main and done:
        logger.info(
            "resuming in %s: %d of %d samples already answered",
            out,
            len(done & set(plan.data.task_of)),
            len(plan.data.samples),
        )
    return pending[ranks.rank :: ranks.world], len(plan.data.samples) - len(pending)


def _grounder(plan: _Plan, ranks: _Ranks) -> tuple[Grounder, CoordSystem]:
    """The local Predictor on this rank's device, or with `endpoint` its OpenAI-endpoint twin; and how
    its boxes are written."""
    config = plan.config
    if config.endpoint:
        from univg.inference.endpoint import EndpointPredictor

        key = os.environ.get(config.api_key_env, "") if config.api_key_env else None
        if config.api_key_env and not key:
            raise UsageError(
                f"{{option}}: the environment variable {config.api_key_env} is not set or empty",
                option="api_key_env",
            )
        coords = CoordSystem.parse(config.coords or CoordSystem.QWEN2VL)
        endpoint = EndpointPredictor(
            config.endpoint,
            config.model,
            api_key=key,
            concurrency=config.concurrency,
            generation=plan.generation,
            style=plan.style,
            coords=coords,
            min_pixels=config.min_pixels,
            max_pixels=config.max_pixels,
        )
        return endpoint, coords
    from univg.models.loading import load_model_and_processor  # torch and transformers: only now

    loaded = load_model_and_processor(
        config.model,
        dtype=config.dtype,
        device_map=config.device_map or (None if ranks.device.type == "cpu" else str(ranks.device)),
        attn_implementation=config.attn_implementation,
        adapter=config.adapter,
        min_pixels=config.min_pixels,
        max_pixels=config.max_pixels,
    )
    predictor = Predictor(
        loaded,
        batch_size=config.batch_size,
        generation=plan.generation,
        style=plan.style,
        length_sort_window=config.length_sort_window,
        fast_decode=config.fast_decode,
    )
    return predictor, loaded.coords


def _load_grounder(plan: _Plan, ranks: _Ranks) -> tuple[Grounder, CoordSystem]:
    """The grounder, checked against the data; rank 0 records it in run.json."""
    grounder, coords = _grounder(plan, ranks)
    require_sizes(plan.data, coords)
    plan.info.update(coords=coords.value, world_size=ranks.world)
    if ranks.main:
        plan.info["provenance"] = provenance()
        _write_run_info(plan)
    return grounder, coords


def _write_run_info(plan: _Plan) -> None:
    write_json_atomic(plan.out / RUN_FILE, plan.info)


def _generate(
    predictor: Grounder,
    shard: list[GroundingSample],
    task_of: dict[str, str],
    target: Path,
    *,
    progress: bool,
    desc: str,
) -> tuple[int, int]:
    """Answer a shard a window of batches at a time (the predictor batches a window by prompt length),
    appending each answer as its window is done; (answers, generated tokens)."""
    from tqdm import tqdm

    answered = tokens = 0
    started = time.perf_counter()
    bar = tqdm(total=len(shard), unit="sample", desc=desc, disable=not progress, dynamic_ncols=True)
    with AppendLog(target) as log, bar:
        window = predictor.batch_size * predictor.length_sort_window
        for begin in range(0, len(shard), window):
            for record in _answer(predictor, shard[begin : begin + window], task_of):
                log.append(record)
                answered += 1
                tokens += int(record.get("generated_tokens", 0))
                bar.update(1)
            bar.set_postfix_str(f"{tokens / max(time.perf_counter() - started, 1e-9):.1f} tok/s")
    return answered, tokens


def _generate_share(
    plan: _Plan, predictor: Grounder, shard: list[GroundingSample], skipped: int, ranks: _Ranks
) -> Outcome:
    """Answer this rank's share into its file; the counts of every rank, summed."""
    started = time.perf_counter()
    target = plan.out / PREDICTIONS_FILE if ranks.world == 1 else rank_file(plan.out, ranks.rank)
    desc = plan.data.benchmark.name + (f" (rank 0 of {ranks.world})" if ranks.world > 1 else "")
    show = plan.config.progress and ranks.main
    answered, tokens = _generate(predictor, shard, plan.data.task_of, target, progress=show, desc=desc)
    return Outcome(
        None,
        generated=ranks.total(answered),  # also waits for every rank's last answer
        skipped=skipped,
        seconds=time.perf_counter() - started,
        generated_tokens=ranks.total(tokens),
    )


def _report_run(plan: _Plan, outcome: Outcome, coords: CoordSystem) -> tuple[dict[str, Any], dict[str, Path]]:
    """Rank 0, once every rank is done: merge the answers, record the session, score and report."""
    config = plan.config
    merge_rank_files(plan.out)
    plan.info["last_session"] = {
        "generated": outcome.generated,
        "skipped": outcome.skipped,
        "seconds": round(outcome.seconds, 3),
        "samples_per_s": round(outcome.samples_per_s, 3),
        "generated_tokens_per_s": round(outcome.tokens_per_s, 3),
    }
    _write_run_info(plan)
    return _score_and_report(
        plan.data,
        plan.out / PREDICTIONS_FILE,
        plan.out,
        parse=plan.parse,
        coords=coords,
        min_pixels=config.min_pixels,
        max_pixels=config.max_pixels,
        label=_model_label(config.model, config.adapter),
        run=plan.info,
        examples=config.examples,
    )


def run_evaluation(config: RunConfig) -> Outcome:
    """Generate every missing prediction (a local model, or an endpoint), then score and write the reports."""
    plan = _plan(config)
    ranks = _Ranks()
    shard, skipped = _pending_share(plan, ranks)
    predictor, coords = _load_grounder(plan, ranks)
    outcome = _generate_share(plan, predictor, shard, skipped, ranks)
    try:
        if ranks.main:
            outcome.results, outcome.paths = _report_run(plan, outcome, coords)
    finally:
        ranks.close()  # the other ranks exit only once rank 0 has written everything
    return outcome


def _score_and_report(
    data: BenchmarkData,
    predictions: Path,
    out: Path,
    *,
    parse: ParseMode,
    coords: CoordSystem,
    min_pixels: int,
    max_pixels: int,
    label: str,
    run: dict[str, Any] | None,
    examples: int,
    write: bool = True,
) -> tuple[dict[str, Any], dict[str, Path]]:
    """Score a predictions file and build results.json (and, with `write`, the three report files)."""
    scores = score_predictions(
        data,
        read_predictions(predictions),
        parse=parse,
        coords=coords,
        min_pixels=min_pixels,
        max_pixels=max_pixels,
    )
    settings = {
        **_data_settings(data),
        "predictions": str(predictions.resolve()),
        "predictions_sha256": file_sha256(predictions),
        "parse": scores.parse,
        "coords": scores.coords.value,
        "max_pixels": max_pixels,
        "min_pixels": min_pixels,
    }
    results = build_results(scores, data, label=label, settings=settings, run=run, provenance=provenance())
    paths = write_reports(out, results, data, scores, examples=examples) if write else {}
    return results, paths


def score_file(
    benchmark: str,
    data: str | os.PathLike[str],
    predictions: str | os.PathLike[str],
    *,
    out: str | os.PathLike[str] | None = None,
    image_root: str | os.PathLike[str] | None = None,
    split: str | None = None,
    tasks: list[str] | None = None,
    limit: int | None = None,
    parse: ParseMode | None = None,
    coords: str | None = None,
    max_pixels: int | None = None,
    label: str | None = None,
    examples: int = 3,
    write: bool = True,
) -> Outcome:
    """Score a predictions file from any model and (with `write`) write the three reports.

    A run.json beside the predictions (an `univg eval run` folder) supplies what was not given: the
    selection (split, tasks, limit, image root), parse mode, coordinates and max_pixels of that run.
    Otherwise the defaults are parse ``answer``, coordinates ``qwen2vl`` and max_pixels 401,408.
    """
    predictions_path = Path(predictions)
    check_input(predictions_path, option="predictions")
    if write:
        check_output(
            out if out is not None else predictions_path.parent, kind="folder", resumable=True, option="out"
        )
    run = read_run_info(predictions_path.parent)
    defaults = run if run is not None and run.get("benchmark") == benchmark else {}
    data_set = load_benchmark(
        benchmark,
        data,
        image_root=image_root if image_root is not None else defaults.get("image_root"),
        split=split if split is not None else defaults.get("split"),
        tasks=tasks if tasks is not None else defaults.get("tasks"),
        limit=limit if limit is not None else defaults.get("limit"),
    )
    pixels = max_pixels if max_pixels is not None else defaults.get("max_pixels", DEFAULT_MAX_PIXELS)
    if label is None:
        label = _model_label(run["model"], run.get("adapter")) if run else predictions_path.stem
    results, paths = _score_and_report(
        data_set,
        predictions_path,
        Path(out) if out is not None else predictions_path.parent,
        parse=parse or defaults.get("parse") or "answer",
        coords=CoordSystem.parse(coords or defaults.get("coords") or CoordSystem.QWEN2VL),
        min_pixels=defaults.get("min_pixels", DEFAULT_MIN_PIXELS),
        max_pixels=pixels,
        label=label,
        run=run,
        examples=examples,
        write=write,
    )
    return Outcome(results, paths)
