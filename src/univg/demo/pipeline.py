"""`univg demo`: synthetic data, the shipped base, CoT-SFT, GRPO twice, held-out evaluation, report.

Every stage is the project's own code: `generate_dataset`, the stage-1 and stage-2 trainers with the
packaged demo recipes, and the evaluation harness. The two GRPO runs start from the same stage-1
checkpoint and differ only in `difficulty_weighting` (none, exp), as in the paper's Table 4.
"""

from __future__ import annotations

import platform
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from univg.demo.assets import BASE_DIR, DEMO_THREADS, recipe_config
from univg.demo.results import DemoResults, GalleryItem, StageResult
from univg.demo.scoring import StageScores, score_model
from univg.demo.world import synth_data

Progress = Callable[[str], None]
# Generation budget at evaluation: the teacher's chains and answers take 30 to 50 tokens.
EVAL_MAX_NEW_TOKENS = 96
EVAL_BATCH = 64
GENERATIONS = 8  # completions per prompt in GRPO, as the paper


@dataclass(frozen=True)
class DemoSize:
    """How much data and how many steps a demo run uses."""

    n_sft: int
    n_rl: int
    eval_per_task: int
    sft_steps: int
    grpo_steps: int
    grpo_prompts: int  # prompts a GRPO step samples (each num_generations times)


QUICK = DemoSize(n_sft=320, n_rl=64, eval_per_task=5, sft_steps=30, grpo_steps=4, grpo_prompts=2)
FULL = DemoSize(n_sft=19_200, n_rl=400, eval_per_task=100, sft_steps=1_200, grpo_steps=200, grpo_prompts=2)


@dataclass(frozen=True)
class StagePlan:
    key: str
    label: str
    weighting: str | None = None  # GRPO stages: difficulty_weighting


STAGES = (
    StagePlan("base", "base"),
    StagePlan("sft", "CoT-SFT"),
    StagePlan("grpo", "+GRPO", "none"),
    StagePlan("grpo_difficulty", "+GRPO-difficulty", "exp"),
)


class Clock:
    """Announces each stage with the time spent so far."""

    def __init__(self, total: int, say: Progress) -> None:
        self.total = total
        self.say = say
        self.started = time.perf_counter()
        self.count = 0

    def stage(self, message: str) -> None:
        self.count += 1
        elapsed = time.perf_counter() - self.started
        self.say(f"[{self.count}/{self.total}] {message} (elapsed {elapsed / 60:.1f} min)")

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started


def make_data(out: Path, size: DemoSize, seed: int) -> tuple[Path, Path, Path]:
    """One synthetic set, its training split cut into a CoT-SFT part and an RL part; (sft, rl, eval)."""
    from univg.data.schema import read_jsonl, write_jsonl
    from univg.data.synthetic import DEFAULT_TASKS, SynthConfig

    config = SynthConfig(
        n=size.n_sft + size.n_rl,
        n_eval=size.eval_per_task * len(DEFAULT_TASKS),
        seed=seed,
        tasks=DEFAULT_TASKS,
    )
    root = synth_data(out, config)
    samples = list(read_jsonl(root / "train.jsonl"))
    write_jsonl(samples[: size.n_sft], root / "sft.jsonl")
    write_jsonl(samples[size.n_sft :], root / "rl.jsonl")
    return root / "sft.jsonl", root / "rl.jsonl", root / "eval.jsonl"


def _train(build: Callable[[], Any], output_dir: Path, log_file: Path, description: str) -> Any:
    """Run a trainer quietly: a progress bar on the terminal, its log entries in `log_file`."""
    from univg.training.progress import watch_quietly
    from univg.training.runner import run_trainer

    def quiet() -> Any:
        trainer = build()
        watch_quietly(trainer, log_file, description)
        return trainer

    shutil.rmtree(output_dir, ignore_errors=True)
    log_file.unlink(missing_ok=True)
    return run_trainer(quiet, str(output_dir))


def train_stage(
    plan: StagePlan, model: Path, train_file: Path, out: Path, logs: Path, size: DemoSize, seed: int
) -> Any:
    """Stage 1 (CoT-SFT), or a stage-2 GRPO run with the plan's phi, from `model` with its packaged recipe."""
    from univg.training.grpo import UniVGGRPOConfig, build_grpo_trainer
    from univg.training.sft import UniVGSFTConfig, build_sft_trainer

    common = {
        "model_name_or_path": str(model),
        "output_dir": str(out),
        "train_files": [str(train_file)],
        "seed": seed,
    }
    if plan.weighting is None:
        sft = recipe_config(UniVGSFTConfig, "sft", **common, max_steps=size.sft_steps)
        return _train(lambda: build_sft_trainer(sft), out, logs / f"{plan.key}.jsonl", plan.label)
    grpo = recipe_config(
        UniVGGRPOConfig,
        "grpo",
        **common,
        max_steps=size.grpo_steps,
        difficulty_weighting=plan.weighting,
        num_generations=GENERATIONS,
        per_device_train_batch_size=size.grpo_prompts * GENERATIONS,
    )
    return _train(lambda: build_grpo_trainer(grpo), out, logs / f"{plan.key}.jsonl", plan.label)


def evaluate(plan: StagePlan, model_dir: Path, style: str, eval_file: Path, out: Path) -> StageScores:
    return score_model(
        model_dir,
        eval_file,
        out,
        style=style,
        batch_size=EVAL_BATCH,
        max_new_tokens=EVAL_MAX_NEW_TOKENS,
        progress=True,
    )


def gallery_items(eval_file: Path, tasks: list[str]) -> list[GalleryItem]:
    """The first held-out sample of each task."""
    from univg.data.schema import read_jsonl

    chosen: dict[str, GalleryItem] = {}
    for sample in read_jsonl(eval_file):
        if sample.task in tasks and sample.task not in chosen:
            image = Path(eval_file).parent / sample.images[sample.target_image]
            chosen[sample.task] = GalleryItem(
                sample.id, sample.task, sample.question, str(image), list(sample.box)
            )
    return [chosen[t] for t in tasks if t in chosen]


def machine(threads: int) -> dict[str, Any]:
    """What the numbers may depend on: the CPU, the thread count and the library versions."""
    import torch
    import transformers
    import trl

    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "threads": threads,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "trl": trl.__version__,
    }


def run_demo(
    out: str | Path,
    *,
    quick: bool = False,
    seed: int = 0,
    base: str | Path = BASE_DIR,
    size: DemoSize | None = None,
    threads: int = DEMO_THREADS,
    progress: Progress | None = None,
) -> DemoResults:
    """The whole method on the synthetic world; writes DIR/results.json, DIR/report.md, DIR/report.html.

    The numbers depend on `threads` (floating-point sums are split by thread), not on the machine's cores.
    """
    import torch

    from univg.data.synthetic import DEFAULT_TASKS, MIG_TASKS
    from univg.demo.report import write_report

    say = progress or (lambda _message: None)
    size = size or (QUICK if quick else FULL)
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    logs = root / "logs"
    clock = Clock(
        2 + 2 * len(STAGES) - 1, say
    )  # data, each stage evaluated, all but the base trained, report

    clock.stage(
        f"synthetic data: {size.n_sft} CoT-SFT, {size.n_rl} RL, {size.eval_per_task} held-out per task"
    )
    sft_file, rl_file, eval_file = make_data(root / "data", size, seed)
    tasks = list(DEFAULT_TASKS)
    gallery = gallery_items(eval_file, tasks)
    stages: list[StageResult] = []
    models = {"base": Path(base)}
    for plan in STAGES:
        style = "plain" if plan.key == "base" else "univg"
        trained = None
        if plan.key == "sft":
            clock.stage(f"stage 1: CoT-SFT, {size.sft_steps} steps")
            models["sft"] = root / "models" / "sft"
            trained = train_stage(plan, models["base"], sft_file, models["sft"], logs, size, seed)
        elif plan.weighting is not None:
            clock.stage(
                f"stage 2: {plan.label} (difficulty_weighting {plan.weighting}), {size.grpo_steps} steps of "
                f"{size.grpo_prompts} prompts x {GENERATIONS}"
            )
            models[plan.key] = root / "models" / plan.key
            trained = train_stage(plan, models["sft"], rl_file, models[plan.key], logs, size, seed)
        clock.stage(f"evaluating {plan.label} ({'plain' if style == 'plain' else 'reasoning'} prompt)")
        scores = evaluate(plan, models[plan.key], style, eval_file, root / "eval" / plan.key)
        for item in gallery:
            box, iou = scores.boxes.get(item.id, (None, 0.0))
            item.boxes[plan.key], item.ious[plan.key] = box, iou
        stages.append(
            StageResult(
                plan.key,
                plan.label,
                str(models[plan.key]),
                style,
                scores.hits,
                train_seconds=round(trained.runtime_s, 1) if trained else 0.0,
                eval_seconds=round(scores.seconds, 1),
                log_history=trained.log_history if trained else [],
                named=scores.named,
            )
        )

    clock.stage("writing the report")
    results = DemoResults(
        settings={"quick": quick, "seed": seed, "base": str(base), "size": asdict(size)},
        machine=machine(threads),
        tasks=tasks,
        multi_image_tasks=[t for t in tasks if t in MIG_TASKS],
        stages=stages,
        seconds=clock.elapsed,
        gallery=gallery,
    )
    write_report(results, root)
    return results
