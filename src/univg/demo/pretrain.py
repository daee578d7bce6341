"""The demo's base model: the tiny Qwen2-VL trained from random weights on simple grounding.

The paper starts from Qwen2-VL, which already grounds simple references. No checkpoint can be
downloaded here and a random model shows nothing for thousands of steps (shared/notes/learnability.md),
so `univg demo pretrain-base` plays Qwen2-VL's pretraining: single-image referring and "locate X in
image k" only, with plain Qwen2-VL answers, through the project's own stage-1 trainer. The result ships
in the package (`univg/assets/demo_base`) with a card saying how to rebuild it.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from univg.demo.assets import CHECKPOINT_FILES, recipe

Progress = Callable[[str], None]
PRETRAIN_LOG = "pretrain_log.json"
CARD = "CARD.md"


@dataclass(frozen=True)
class PretrainConfig:
    """What `univg demo pretrain-base` runs. `minutes` stops early; the card records the steps done."""

    out: Path
    seed: int = 0
    n_train: int = 20_000
    n_eval: int = 400
    max_steps: int = 9_000
    minutes: float | None = None
    batch_size: int = 16
    save_steps: int = 1_000
    eval_batch_size: int = 32


@dataclass
class PretrainResult:
    """The exported checkpoint and what the card reports about it."""

    base_dir: Path
    steps: int
    train_seconds: float
    samples_per_s: float
    accuracy: dict[str, float]  # task -> held-out Acc@0.5 (percent), plus "average"
    losses: list[tuple[int, float]] = field(default_factory=list)
    command: str = ""


def synth_data(out: Path, config: Any) -> Path:
    """Generate a synthetic set into `out`, or reuse the one there when it was made with the same config."""
    from univg.data.synthetic import generate_dataset

    manifest = out / "manifest.json"
    if manifest.is_file() and json.loads(manifest.read_text(encoding="utf-8"))["config"] == json.loads(
        json.dumps(asdict(config))
    ):
        return out
    shutil.rmtree(out, ignore_errors=True)
    generate_dataset(out, config)
    return out


def time_limit(seconds: float) -> Any:
    """A trainer callback that stops training once `seconds` of wall time have passed."""
    from transformers import TrainerCallback

    class TimeLimit(TrainerCallback):
        def __init__(self) -> None:
            self.started = time.perf_counter()

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            if time.perf_counter() - self.started > seconds:
                control.should_training_stop = True
            return control

    return TimeLimit()


def export_checkpoint(model_dir: Path, target: Path) -> Path:
    """Copy the files a checkpoint needs to load (not its optimizer or training state) to `target`."""
    target.mkdir(parents=True, exist_ok=True)
    for name in CHECKPOINT_FILES:
        if (model_dir / name).is_file():
            shutil.copy2(model_dir / name, target / name)
    return target


def held_out_accuracy(
    model_dir: Path, eval_file: Path, out: Path, *, style: str, batch_size: int, limit: int | None = None
) -> dict[str, float]:
    """Acc@0.5 per task and on average (percent) on a synthetic held-out split, by the evaluation harness.

    `limit` keeps the first samples of each task (a cheaper look at checkpoints along the way).
    """
    from univg.evaluation import RunConfig, run_evaluation

    shutil.rmtree(out, ignore_errors=True)
    outcome = run_evaluation(
        RunConfig(
            "synthetic",
            str(eval_file),
            str(model_dir),
            str(out),
            style=style,
            batch_size=batch_size,
            limit=limit,
            max_new_tokens=64,
            max_pixels=12544,
            min_pixels=3136,
            dtype="float32",
            progress=False,
            examples=0,  # the demo draws its own gallery
        )
    )
    results = outcome.results or {}
    accuracy = {task: float(m["acc@0.5"]) for task, m in results.get("tasks", {}).items()}
    accuracy["average"] = float(results.get("average", {}).get("acc@0.5", 0.0))
    return accuracy


def rebuild_command(config: PretrainConfig, steps: int) -> str:
    """The command that makes the same weights again (a constant schedule: stopping early changes nothing).

    The output folder is left out: it changes nothing in the weights (the default is univg-pretrain).
    """
    return (
        f"univg demo pretrain-base --seed {config.seed} --max-steps {steps} "
        f"--n-train {config.n_train} --n-eval {config.n_eval}"
    )


def pretrain_base(config: PretrainConfig, progress: Progress | None = None) -> PretrainResult:
    """Generate the data, train from random weights, evaluate on held-out data, export with a card."""
    import torch

    from univg.data.synthetic import PRETRAIN_TASKS, SynthConfig
    from univg.models.tiny import build_tiny_model
    from univg.training.config import parse_config
    from univg.training.runner import run_trainer
    from univg.training.sft import UniVGSFTConfig, build_sft_trainer

    say = progress or (lambda _message: None)
    # One thread: two threads are several times slower for this model on a shared 2-core machine.
    torch.set_num_threads(1)
    out = Path(config.out)
    say(f"pretrain 1/4: synthetic data ({config.n_train} train, {config.n_eval} held-out)")
    synth = synth_data(
        out / "synth",
        SynthConfig(n=config.n_train, n_eval=config.n_eval, seed=config.seed, tasks=PRETRAIN_TASKS),
    )
    say("pretrain 2/4: random-init tiny Qwen2-VL")
    init = build_tiny_model(out / "init", seed=config.seed, overwrite=True)
    train_dir = out / "train"
    shutil.rmtree(train_dir, ignore_errors=True)
    sft = parse_config(
        UniVGSFTConfig,
        [
            "--config",
            str(recipe("pretrain")),
            "--model_name_or_path",
            str(init),
            "--output_dir",
            str(train_dir),
            "--train_files",
            str(synth / "train.jsonl"),
            "--seed",
            str(config.seed),
            "--max_steps",
            str(config.max_steps),
            "--per_device_train_batch_size",
            str(config.batch_size),
            "--save_steps",
            str(config.save_steps),
        ],
    )
    say(f"pretrain 3/4: training up to {config.max_steps} steps of {config.batch_size}")

    def build() -> Any:
        trainer = build_sft_trainer(sft)
        if config.minutes is not None:
            trainer.add_callback(time_limit(60.0 * config.minutes))
        return trainer

    trained = run_trainer(build, str(train_dir))
    losses = [(int(e["step"]), float(e["loss"])) for e in trained.log_history if "loss" in e]
    base_dir = export_checkpoint(train_dir, out / "base")
    say("pretrain 4/4: held-out evaluation")
    accuracy = held_out_accuracy(
        base_dir, synth / "eval.jsonl", out / "eval", style="plain", batch_size=config.eval_batch_size
    )
    result = PretrainResult(
        base_dir=base_dir,
        steps=trained.global_step,
        train_seconds=trained.runtime_s,
        samples_per_s=trained.global_step * config.batch_size / max(trained.runtime_s, 1e-9),
        accuracy=accuracy,
        losses=losses,
        command=rebuild_command(config, trained.global_step),
    )
    (base_dir / PRETRAIN_LOG).write_text(
        json.dumps(
            {
                "config": {k: v for k, v in asdict(config).items() if k != "out"},
                "steps": result.steps,
                "train_seconds": result.train_seconds,
                "samples_per_s": result.samples_per_s,
                "accuracy": accuracy,
                "losses": losses,
                "command": result.command,
            },
            indent=1,
        )
        + "\n",
        encoding="utf-8",
    )
    (base_dir / CARD).write_text(render_card(config, result), encoding="utf-8")
    return result


def render_card(
    config: PretrainConfig, result: PretrainResult, curve: dict[int, dict[str, float]] | None = None
) -> str:
    """The checkpoint's card: data, seed, steps, time, held-out accuracy, and how to rebuild it."""
    lines = [
        "# univg demo base checkpoint",
        "",
        "A 0.8M-parameter Qwen2-VL trained from random weights on the synthetic world's simple tasks, the",
        "stand-in for Qwen2-VL's pretraining in `univg demo` (no download possible or needed).",
        "",
        f"- data: `univg data synth` tasks referring + locate, {config.n_train} training samples, "
        f"{config.n_eval} held-out, seed {config.seed}, 112 px images (16 image tokens each)",
        "- format: plain Qwen2-VL answers `<|box_start|>(x1, y1), (x2, y2)<|box_end|>` (0..1000); the",
        "  `<think>`/`<answer>` format is left to stage 1 (CoT-SFT), as for Qwen2-VL",
        f"- training: the stage-1 trainer with recipe `univg/assets/recipes/demo_pretrain.yaml`, "
        f"{result.steps} steps of {config.batch_size}, lr 1e-3 constant after 50 warm-up steps, seed "
        f"{config.seed}",
        f"- time: {result.train_seconds / 60:.1f} min on 1 CPU thread ({result.samples_per_s:.1f} samples/s)",
        "",
        "## Held-out Acc@0.5 (plain prompt, first box parsed)",
        "",
        "| task | Acc@0.5 |",
        "|---|---|",
        *(f"| {task} | {value:.1f} |" for task, value in result.accuracy.items()),
        "",
    ]
    if curve:
        tasks = list(result.accuracy)
        lines += [
            "## Held-out Acc@0.5 along the way (first 50 held-out samples of each task)",
            "",
            "| step | " + " | ".join(tasks) + " |",
            "|---|" + "---|" * len(tasks),
            *(
                f"| {step} | " + " | ".join(f"{values.get(t, 0.0):.1f}" for t in tasks) + " |"
                for step, values in sorted(curve.items())
            ),
            "",
        ]
    if result.losses:
        shown = result.losses[:: max(1, len(result.losses) // 12)]
        lines += [
            "## Training loss",
            "",
            " ".join(f"{step}: {loss:.3f}" for step, loss in shown),
            "",
        ]
    lines += ["## Rebuild", "", "```", result.command, "```", ""]
    return "\n".join(lines)


def add_curve(base_dir: Path, curve: dict[int, dict[str, float]]) -> None:
    """Record held-out accuracy at checkpoints along the way in a finished base's log and card."""
    log_path = base_dir / PRETRAIN_LOG
    log = json.loads(log_path.read_text(encoding="utf-8"))
    log["curve"] = {str(step): value for step, value in sorted(curve.items())}
    log_path.write_text(json.dumps(log, indent=1) + "\n", encoding="utf-8")
    config = PretrainConfig(out=base_dir.parent, **{k: v for k, v in log["config"].items() if k != "out"})
    result = PretrainResult(
        base_dir=base_dir,
        steps=log["steps"],
        train_seconds=log["train_seconds"],
        samples_per_s=log["samples_per_s"],
        accuracy=log["accuracy"],
        losses=[(int(step), float(loss)) for step, loss in log["losses"]],
        command=log["command"],
    )
    (base_dir / CARD).write_text(render_card(config, result, curve), encoding="utf-8")
