"""The demo's base model: the tiny Qwen2-VL trained from random weights on simple grounding.

The paper starts from Qwen2-VL, which already grounds simple references. No checkpoint can be
downloaded here and a random model shows nothing for thousands of steps (shared/notes/learnability.md),
so `univg demo pretrain-base` plays Qwen2-VL's pretraining: single-image referring, "locate X in image k"
and "name the marked object" only, with plain Qwen2-VL answers (in `named` phases its grounded form, the
target's name before the box), through the project's own stage-1 trainer. The result ships
in the package (`univg/assets/demo_base`) with a card saying how to rebuild it.
"""

from __future__ import annotations

import json
import platform
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from univg.demo.assets import DEMO_THREADS, export_checkpoint, recipe_config
from univg.demo.scoring import score_model
from univg.demo.world import synth_data

Progress = Callable[[str], None]
PRETRAIN_LOG = "pretrain_log.json"
CARD = "CARD.md"
ANNEAL = "anneal"
NAMED = "named"
# A phase's options, in the order its text writes them, and how its card row says each.
PHASE_OPTIONS = {NAMED: "answers name the target", ANNEAL: "lr annealed to 0"}


@dataclass(frozen=True)
class Phase:
    """One stretch of pretraining: which synthetic tasks, at which difficulty, for how many steps.

    `anneal` decays the learning rate linearly to 0 over the phase instead of keeping it constant: a model
    whose loss has plateaued at the constant rate refines its boxes as the steps shrink. `named` writes
    the answers in Qwen2-VL's grounded form, the target's name before its box, so the base writes words
    (the names its CoT-SFT chains start with), not boxes alone.
    """

    tasks: tuple[str, ...]
    difficulty: str
    steps: int
    anneal: bool = False
    named: bool = False

    @classmethod
    def parse(cls, text: str) -> Phase:
        """'referring:easy:6000', 'referring,locate:mixed:12000' or '...:4000:named:anneal' (the CLI's --phase)."""
        from univg.data.synthetic import DIFFICULTIES, parse_tasks

        parts = text.split(":")
        options = parts[3:]
        expected = f"expected TASKS:DIFFICULTY:STEPS[:{NAMED}][:{ANNEAL}], e.g. referring:easy:6000"
        if len(parts) < 3 or not parts[2].strip().isdigit() or int(parts[2]) < 1:
            raise ValueError(f"phase {text!r}: {expected}")
        unknown = [o for o in options if o not in PHASE_OPTIONS]
        if unknown or len(set(options)) != len(options):
            raise ValueError(f"phase {text!r}: {expected} (options: each of {NAMED}, {ANNEAL} at most once)")
        if parts[1] not in DIFFICULTIES:
            raise ValueError(f"phase {text!r}: difficulty {parts[1]!r} is not one of {DIFFICULTIES}")
        return cls(parse_tasks(parts[0]), parts[1], int(parts[2]), ANNEAL in options, NAMED in options)

    def options(self) -> list[str]:
        """The options this phase has on, in PHASE_OPTIONS order."""
        return [option for option in PHASE_OPTIONS if {NAMED: self.named, ANNEAL: self.anneal}[option]]

    def __str__(self) -> str:
        return ":".join([",".join(self.tasks), self.difficulty, str(self.steps), *self.options()])


# Easy single-image referring until the model localises, then the full mix of referring and "locate X
# in image k" at every difficulty: a random model first learns only the answer format and the average
# box, and starts to localise sooner on easy single-image scenes. These are the shipped base's phases
# (the second stopped at its 88-minute budget), so the plain command rebuilds it.
DEFAULT_PHASES = (
    Phase(("referring",), "easy", 10_000),
    Phase(("referring", "locate"), "mixed", 11_314),
)


@dataclass(frozen=True)
class PretrainConfig:
    """What `univg demo pretrain-base` runs. `minutes` stops early; the card records the steps done."""

    out: Path
    seed: int = 0
    phases: tuple[Phase, ...] = DEFAULT_PHASES
    n_train: int = 20_000
    n_eval: int = 400
    minutes: float | None = None
    batch_size: int = 16
    save_steps: int = 1_000
    eval_batch_size: int = 32
    # The weights depend on it (floating-point sums split by thread): the card records it.
    threads: int = DEMO_THREADS
    # Start from this checkpoint instead of random weights (an earlier base: its card becomes the history).
    init: Path | None = None


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
    # after each phase: its steps and seconds, and Acc@0.5 on its own held-out split
    phases: list[dict[str, Any]] = field(default_factory=list)
    history: str | None = None  # the card of the base these phases continue, if any


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


def rebuild_command(config: PretrainConfig, phases: list[Phase]) -> str:
    """The command that makes the same weights again: the phases as run (a constant schedule, so a
    phase stopped early equals a shorter phase; an annealed phase is only reproduced when it ran to its
    end). The output folder changes nothing in the weights."""
    flags = " ".join(f"--phase {phase}" for phase in phases)
    start = "--init EARLIER_BASE " if config.init is not None else ""
    return (
        f"univg demo pretrain-base {start}--seed {config.seed} {flags} "
        f"--n-train {config.n_train} --n-eval {config.n_eval} --batch-size {config.batch_size} "
        f"--threads {config.threads}"
    )


PHASE_DONE = "phase.json"


def phase_config(config: PretrainConfig, phase: Phase, init: Path, train_dir: Path, synth: Path) -> Any:
    """The stage-1 trainer's config for one phase: the pretrain recipe with this phase's model, data and steps."""
    from univg.training.sft import UniVGSFTConfig

    return recipe_config(
        UniVGSFTConfig,
        "pretrain",
        model_name_or_path=str(init),
        output_dir=str(train_dir),
        train_files=[str(synth / "train.jsonl")],
        seed=config.seed,
        max_steps=phase.steps,
        per_device_train_batch_size=config.batch_size,
        save_steps=config.save_steps,
        answer_names_target=phase.named,
        **({"lr_scheduler_type": "linear", "warmup_steps": 0} if phase.anneal else {}),
    )


def train_phase(
    config: PretrainConfig, index: int, init: Path, synth: Path, seconds_left: float | None
) -> tuple[Path, dict[str, Any]]:
    """Train one phase from `init` into `out/train-<index>` (resuming a killed run, skipping a done one)."""
    from transformers.trainer_utils import get_last_checkpoint

    from univg.training.progress import watch_quietly
    from univg.training.runner import run_trainer
    from univg.training.sft import build_sft_trainer

    phase = config.phases[index]
    train_dir = Path(config.out) / f"train-{index}"
    done = train_dir / PHASE_DONE
    if done.is_file():
        record = json.loads(done.read_text(encoding="utf-8"))
        if record["phase"] == str(phase) and record["init"] == str(init):
            return train_dir, record
    resume = train_dir.is_dir() and get_last_checkpoint(str(train_dir)) is not None
    if not resume:
        shutil.rmtree(train_dir, ignore_errors=True)
    sft = phase_config(config, phase, init, train_dir, synth)

    def build() -> Any:
        trainer = build_sft_trainer(sft)
        watch_quietly(trainer, Path(config.out) / "logs" / f"phase-{index}.jsonl", f"phase {index + 1}")
        if seconds_left is not None:
            trainer.add_callback(time_limit(seconds_left))
        return trainer

    trained = run_trainer(build, str(train_dir), resume=resume)
    record = {
        "phase": str(phase),
        "init": str(init),
        "steps": trained.global_step,
        "train_seconds": trained.runtime_s,
        "losses": [(int(e["step"]), float(e["loss"])) for e in trained.log_history if "loss" in e],
    }
    done.write_text(json.dumps(record) + "\n", encoding="utf-8")
    return train_dir, record


def pretrain_base(config: PretrainConfig, progress: Progress | None = None) -> PretrainResult:
    """Run the phases from random weights, evaluate each on its held-out split, export with a card.

    Killed and run again with the same arguments, it resumes the phase it was in from its newest
    checkpoint and skips the phases already done.
    """
    import torch

    from univg.data.synthetic import SynthConfig
    from univg.models.tiny import build_tiny_model

    if not config.phases:
        raise ValueError("pretraining needs at least one phase")
    say = progress or (lambda _message: None)
    torch.set_num_threads(config.threads)
    out = Path(config.out)
    init = out / "init"
    history = None
    if config.init is not None:
        say(f"pretrain: continuing {config.init}")
        if not (init / "model.safetensors").is_file():
            export_checkpoint(Path(config.init), init)
        card = Path(config.init) / CARD
        history = card.read_text(encoding="utf-8") if card.is_file() else None
    else:
        say("pretrain: random-init tiny Qwen2-VL (grounding vocabulary)")
        if not (init / "model.safetensors").is_file():
            build_tiny_model(init, vocab="grounding", seed=config.seed, overwrite=True)
    started = time.perf_counter()
    model, records, ran, losses, steps = init, [], [], [], 0
    for index, phase in enumerate(config.phases):
        left = None if config.minutes is None else 60.0 * config.minutes - (time.perf_counter() - started)
        if left is not None and left <= 0:
            break
        number = f"phase {index + 1}/{len(config.phases)}"
        say(f"pretrain {number}: data ({', '.join(phase.tasks)}, {phase.difficulty})")
        synth = synth_data(
            out / f"synth-{index}",
            SynthConfig(
                n=config.n_train,
                n_eval=config.n_eval,
                seed=config.seed,
                tasks=phase.tasks,
                difficulty=phase.difficulty,
            ),
        )
        say(f"pretrain {number}: training up to {phase.steps} steps of {config.batch_size}")
        model, record = train_phase(config, index, model, synth, left)
        say(f"pretrain {number}: held-out evaluation")
        scores = score_model(
            model,
            synth / "eval.jsonl",
            out / f"eval-{index}",
            style="plain",
            batch_size=config.eval_batch_size,
        )
        record["accuracy"] = scores.accuracy()
        record["names_target"] = scores.naming()
        losses += [(steps + step, loss) for step, loss in record["losses"]]
        steps += record["steps"]
        records.append({k: v for k, v in record.items() if k not in ("losses", "init")})
        ran.append(replace(phase, steps=record["steps"]))
        say(
            f"pretrain {number}: {record['steps']} steps, held-out Acc@0.5 {record['accuracy']['average']:.1f}"
        )
    base_dir = export_checkpoint(model, out / "base")
    train_seconds = sum(r["train_seconds"] for r in records)
    result = PretrainResult(
        base_dir=base_dir,
        steps=steps,
        train_seconds=train_seconds,
        samples_per_s=steps * config.batch_size / max(train_seconds, 1e-9),
        accuracy=records[-1]["accuracy"],
        losses=losses,
        command=rebuild_command(config, ran),
        phases=records,
        history=history,
    )
    log = {
        "config": {k: v for k, v in asdict(config).items() if k not in ("out", "phases", "init")},
        "phases": records,
        "steps": result.steps,
        "train_seconds": result.train_seconds,
        "samples_per_s": result.samples_per_s,
        "accuracy": result.accuracy,
        "losses": losses,
        "command": result.command,
        "continues": history,
    }
    (base_dir / PRETRAIN_LOG).write_text(json.dumps(log, indent=1) + "\n", encoding="utf-8")
    (base_dir / CARD).write_text(render_card(config, result), encoding="utf-8")
    return result


def _phase_label(phase: Phase) -> str:
    notes = [PHASE_OPTIONS[option] for option in phase.options()]
    label = f"{','.join(phase.tasks)}:{phase.difficulty}"
    return f"{label} ({', '.join(notes)})" if notes else label


def render_card(config: PretrainConfig, result: PretrainResult) -> str:
    """The checkpoint's card: data, seed, phases, time, held-out accuracy, and how to rebuild it."""
    origin = (
        "trained further from an earlier base (EARLIER_BASE, whose card is at the end)"
        if result.history
        else "trained from random weights"
    )
    lines = [
        "# univg demo base checkpoint",
        "",
        f"A tiny Qwen2-VL (0.9M parameters) {origin} on the synthetic world's simple tasks, the",
        "stand-in for Qwen2-VL's pretraining in `univg demo` (no download possible or needed).",
        "",
        f"- data: `univg data synth`, {config.n_train} training and {config.n_eval} held-out samples per "
        f"phase, seed {config.seed}, 112 px images (16 image tokens each)",
        "- vocabulary: `grounding` (every word of the synthetic world one token, digits one token each)",
        "- format: plain answers, the bare box `(x1, y1), (x2, y2)` (0..1000), or in a `named` phase Qwen2-VL's",
        "  grounded form `<|object_ref_start|>the red circle<|object_ref_end|>(x1, y1), (x2, y2)`; the",
        "  `<think>`/`<answer>` format is left to stage 1 (CoT-SFT), as for Qwen2-VL",
        f"- training: the stage-1 trainer with recipe `univg/assets/recipes/demo_pretrain.yaml`, "
        f"{result.steps} steps of {config.batch_size}, lr 1e-3 constant after 50 warm-up steps (an annealed "
        f"phase decays it linearly to 0 instead), seed {config.seed}",
        f"- time: {result.train_seconds / 60:.1f} min on {config.threads} CPU thread(s) of "
        f"{platform.processor() or platform.machine()} ({result.samples_per_s:.1f} samples/s)",
        "",
        "## Phases and held-out Acc@0.5 after each (plain prompt, its own held-out split)",
        "",
        "| phase (tasks:difficulty) | steps | minutes | Acc@0.5 per task | average | answers naming the target |",
        "|---|---|---|---|---|---|",
        *(
            f"| {_phase_label(Phase.parse(p['phase']))} | {p['steps']} | {p['train_seconds'] / 60:.1f} | "
            + ", ".join(f"{task} {value:.1f}" for task, value in p["accuracy"].items() if task != "average")
            + f" | {p['accuracy']['average']:.1f} | "
            + ", ".join(f"{task} {value:.1f}" for task, value in p.get("names_target", {}).items())
            + " |"
            for p in result.phases
        ),
        "",
        "A named answer names the target when it holds the phrase the sample's teacher chain uses (its whole",
        "colour, shape and, where needed, texture); `marked` gives the box in the question, so its Acc@0.5 is a",
        "copy and its naming share is what it measures.",
        "",
    ]
    if result.losses:
        shown = result.losses[:: max(1, len(result.losses) // 12)]
        lines += ["## Training loss", "", " ".join(f"{step}: {loss:.3f}" for step, loss in shown), ""]
    lines += ["## Rebuild", "", "```", result.command, "```", ""]
    if result.history:
        earlier = result.history.replace("\n#", "\n##").replace(
            "# univg demo base checkpoint", "The earlier base", 1
        )
        lines += ["## EARLIER_BASE", "", earlier.strip(), ""]
    return "\n".join(lines)
