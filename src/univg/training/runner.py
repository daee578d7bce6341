"""Running a built trainer the same way for both stages: resume, save, report."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transformers import PreTrainedModel, Trainer
from transformers.trainer_utils import get_last_checkpoint

from univg.core.errors import UsageError
from univg.data.files import check_output


@dataclass
class TrainResult:
    """What a finished training run reports to its caller."""

    output_dir: str
    global_step: int
    runtime_s: float
    final_metrics: dict[str, float]
    log_history: list[dict[str, float]]


def run_trainer(build: Callable[[], Trainer], output_dir: str, *, resume: bool = False) -> TrainResult:
    """Build the trainer, train, and save the model and processor to `output_dir`.

    With `resume`, training continues from the newest `checkpoint-N` in `output_dir` (model, optimizer,
    scheduler, RNG states and data position), so a killed run ends where an uninterrupted one would.
    The check comes before building, so a wrong path fails in a second rather than after model loading.
    """
    check_output(output_dir, kind="folder", resumable=True, option="output_dir")
    if resume and not (Path(output_dir).is_dir() and get_last_checkpoint(str(output_dir))):
        raise UsageError(
            f"no checkpoint-N folder in {output_dir} to continue from",
            option="resume",
            hint="drop {option} to start a new run",
        )
    trainer = build()
    output = trainer.train(resume_from_checkpoint=True if resume else None)
    trainer.save_model(output_dir)
    trainer.processing_class.save_pretrained(output_dir)
    return TrainResult(
        output_dir=str(output_dir),
        global_step=trainer.state.global_step,
        runtime_s=float(output.metrics.get("train_runtime", 0.0)),
        final_metrics={k: float(v) for k, v in output.metrics.items() if isinstance(v, int | float)},
        log_history=[dict(entry) for entry in trainer.state.log_history],
    )


class ExactResumeMixin:
    """Makes `Trainer` resume restore the model weights of a transformers-5 checkpoint.

    transformers 5.24's Trainer reloads `model.safetensors` with a raw `load_state_dict(strict=False)`,
    but Qwen2-VL saves its weights under the legacy key names (`model.embed_tokens...`) while the live
    module uses the new ones (`model.language_model.embed_tokens...`): nothing matches, a warning is
    logged, and the "resumed" run silently continues from the initial weights. Loading the checkpoint
    through `from_pretrained` applies the key conversion; a strict load then proves every weight landed.
    DeepSpeed, FSDP and PEFT checkpoints keep the Trainer's own path.
    """

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: Any = None) -> None:
        target = model if model is not None else self.model  # type: ignore[attr-defined]
        folder = Path(resume_from_checkpoint)
        has_weights = (folder / "model.safetensors").is_file() or (
            folder / "model.safetensors.index.json"
        ).is_file()
        own_path = getattr(self, "is_deepspeed_enabled", False) or getattr(self, "is_fsdp_enabled", False)
        if own_path or not has_weights or not isinstance(target, PreTrainedModel):
            super()._load_from_checkpoint(resume_from_checkpoint, model)  # type: ignore[misc]
            return
        saved = type(target).from_pretrained(folder, dtype=target.dtype, device_map="cpu")
        target.load_state_dict(saved.state_dict(), strict=True)
        del saved
