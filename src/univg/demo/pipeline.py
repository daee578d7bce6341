"""`univg demo`: synthetic data, the shipped base, CoT-SFT, GRPO twice, held-out evaluation, report.

Every stage is the project's own code: `generate_dataset`, the stage-1 and stage-2 trainers with the
packaged demo recipes, and the evaluation harness (`run_evaluation`). The two GRPO runs start from the
same stage-1 checkpoint and differ only in `difficulty_weighting` (none, exp), as in the paper's Table 4.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from univg.demo.assets import BASE_DIR, recipe_args
from univg.demo.pretrain import held_out_accuracy, synth_data

Progress = Callable[[str], None]
RESULTS_FILE = "results.json"
# Generation budget at evaluation: the teacher's chains and answers take about 70 tokens.
EVAL_MAX_NEW_TOKENS = 96
EVAL_BATCH = 32


@dataclass(frozen=True)
class DemoSize:
    """How much data and how many steps a demo run uses."""

    n_sft: int
    n_rl: int
    eval_per_task: int
    sft_steps: int
    grpo_steps: int


QUICK = DemoSize(n_sft=320, n_rl=64, eval_per_task=5, sft_steps=40, grpo_steps=4)
# 200 GRPO steps of 2 prompts x 8 completions: one pass over the RL part. Measured on a seed-1 demo split
# (660 held-out, never the seed-0 one reported): Acc@0.5 after 50 / 200 steps, GRPO 8.3 / 9.4,
# GRPO-difficulty 6.2 / 8.9; and each quarter of the reward curve averages 100 prompts instead of 24.
FULL = DemoSize(n_sft=11_200, n_rl=400, eval_per_task=30, sft_steps=700, grpo_steps=200)


@dataclass
class Stage:
    """One row of the table: a model and its held-out scores."""

    key: str
    label: str
    model_dir: Path
    style: str
    accuracy: dict[str, float] = field(default_factory=dict)  # task -> Acc@0.5 (percent)
    average: float = 0.0
    eval_dir: Path | None = None
    train_seconds: float = 0.0
    log_history: list[dict[str, float]] = field(default_factory=list)


@dataclass
class DemoResult:
    out: Path
    tasks: list[str]
    stages: list[Stage]
    seconds: float
    report_md: Path
    report_html: Path
    results_json: Path


class Clock:
    """Announces each stage with the time spent so far and an estimate of what is left."""

    def __init__(self, estimates: dict[str, float], say: Progress) -> None:
        self.estimates = estimates
        self.say = say
        self.started = time.perf_counter()
        self.done: list[str] = []

    def stage(self, key: str, message: str) -> None:
        left = sum(v for k, v in self.estimates.items() if k not in self.done)
        elapsed = time.perf_counter() - self.started
        number = len(self.done) + 1
        self.say(
            f"[{number}/{len(self.estimates)}] {message} (elapsed {elapsed / 60:.1f} min, "
            f"ETA {left / 60:.1f} min)"
        )
        self.done.append(key)

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started


def estimates(size: DemoSize, n_tasks: int) -> dict[str, float]:
    """Seconds each stage takes on one thread of a busy 2-core CPU, as measured (rough, for the ETA only)."""
    eval_s = 5.0 + 0.05 * size.eval_per_task * n_tasks
    grpo_s = 10.0 + 1.1 * size.grpo_steps
    return {
        "data": 0.004 * (size.n_sft + size.n_rl + size.eval_per_task * n_tasks) + 2.0,
        "eval_base": eval_s,
        "sft": 8.0 + 0.65 * size.sft_steps,
        "eval_sft": eval_s,
        "grpo": grpo_s,
        "eval_grpo": eval_s,
        "grpo_difficulty": grpo_s,
        "eval_grpo_difficulty": eval_s,
        "report": 5.0,
    }


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


def evaluate(stage: Stage, eval_file: Path, out: Path) -> Stage:
    """Score a stage's model on the held-out split with the evaluation harness (fresh, never resumed)."""
    accuracy = held_out_accuracy(
        stage.model_dir,
        eval_file,
        out,
        style=stage.style,
        batch_size=EVAL_BATCH,
        max_new_tokens=EVAL_MAX_NEW_TOKENS,
    )
    stage.average = accuracy.pop("average")
    stage.accuracy = accuracy
    stage.eval_dir = out
    return stage


def train_sft_stage(base: Path, sft_file: Path, out: Path, size: DemoSize, seed: int) -> Stage:
    """Stage 1 (CoT-SFT) from the base with the packaged demo recipe."""
    from univg.training.config import parse_config
    from univg.training.sft import UniVGSFTConfig, train_sft

    shutil.rmtree(out, ignore_errors=True)
    config = parse_config(UniVGSFTConfig, recipe_args("sft", base, out, sft_file, seed, size.sft_steps))
    result = train_sft(config)
    return Stage(
        "sft", "CoT-SFT", out, "univg", train_seconds=result.runtime_s, log_history=result.log_history
    )


def train_grpo_stage(
    key: str, label: str, weighting: str, sft: Path, rl_file: Path, out: Path, size: DemoSize, seed: int
) -> Stage:
    """Stage 2 from the stage-1 checkpoint with the packaged demo recipe and the given phi."""
    from univg.training.config import parse_config
    from univg.training.grpo import UniVGGRPOConfig, train_grpo

    shutil.rmtree(out, ignore_errors=True)
    config = parse_config(
        UniVGGRPOConfig,
        [
            *recipe_args("grpo", sft, out, rl_file, seed, size.grpo_steps),
            "--difficulty_weighting",
            weighting,
        ],
    )
    result = train_grpo(config)
    return Stage(key, label, out, "univg", train_seconds=result.runtime_s, log_history=result.log_history)


def run_demo(
    out: str | Path,
    *,
    quick: bool = False,
    seed: int = 0,
    base: str | Path = BASE_DIR,
    size: DemoSize | None = None,
    progress: Progress | None = None,
) -> DemoResult:
    """The whole method on the synthetic world; writes DIR/report.md, DIR/report.html, DIR/results.json."""
    import torch

    from univg.data.synthetic import DEFAULT_TASKS
    from univg.demo.report import write_report

    say = progress or (lambda _message: None)
    size = size or (QUICK if quick else FULL)
    # One thread: deterministic, and several times faster than two for this model on 2 shared cores.
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    clock = Clock(estimates(size, len(DEFAULT_TASKS)), say)

    clock.stage(
        "data",
        f"synthetic data: {size.n_sft} CoT-SFT, {size.n_rl} RL, {size.eval_per_task} held-out per task",
    )
    sft_file, rl_file, eval_file = make_data(root / "data", size, seed)

    base_stage = Stage("base", "base", Path(base), "plain")
    clock.stage("eval_base", "evaluating the base model (plain prompt)")
    evaluate(base_stage, eval_file, root / "eval" / "base")

    clock.stage("sft", f"stage 1: CoT-SFT, {size.sft_steps} steps")
    sft = train_sft_stage(Path(base), sft_file, root / "models" / "sft", size, seed)
    clock.stage("eval_sft", "evaluating CoT-SFT")
    evaluate(sft, eval_file, root / "eval" / "sft")

    stages = [base_stage, sft]
    for key, label, weighting in (
        ("grpo", "+GRPO", "none"),
        ("grpo_difficulty", "+GRPO-difficulty", "exp"),
    ):
        clock.stage(key, f"stage 2: {label} (difficulty_weighting {weighting}), {size.grpo_steps} steps")
        stage = train_grpo_stage(
            key, label, weighting, sft.model_dir, rl_file, root / "models" / key, size, seed
        )
        clock.stage(f"eval_{key}", f"evaluating {label}")
        stages.append(evaluate(stage, eval_file, root / "eval" / key))

    clock.stage("report", "writing the report")
    tasks = [t for t in DEFAULT_TASKS if t in stages[-1].accuracy]
    result = DemoResult(
        out=root,
        tasks=tasks,
        stages=stages,
        seconds=clock.elapsed,
        report_md=root / "report.md",
        report_html=root / "report.html",
        results_json=root / RESULTS_FILE,
    )
    settings = {"quick": quick, "seed": seed, "base": str(base), "size": asdict(size)}
    write_report(result, eval_file, settings)
    return result


def results_json(result: DemoResult, settings: dict[str, Any]) -> dict[str, Any]:
    """What DIR/results.json holds: the table, the training curves and how the run was made."""
    from univg.demo.report import reward_rise

    return {
        "settings": settings,
        "seconds": round(result.seconds, 1),
        "tasks": result.tasks,
        "stages": [
            {
                "key": s.key,
                "label": s.label,
                "model": str(s.model_dir),
                "prompt_style": s.style,
                "acc@0.5": s.accuracy,
                "average": s.average,
                "train_seconds": round(s.train_seconds, 1),
                "accuracy_reward_first_last_quarter": reward_rise(s) if s.key.startswith("grpo") else None,
                "log_history": s.log_history,
            }
            for s in result.stages
        ],
    }


def write_results(result: DemoResult, settings: dict[str, Any]) -> Path:
    result.results_json.write_text(
        json.dumps(results_json(result, settings), indent=1) + "\n", encoding="utf-8"
    )
    return result.results_json
