"""A quiet way to watch a training run: one progress bar with ETA, every log entry kept in a file.

The Trainer prints each log entry as a raw dict (with `disable_tqdm`, through `PrinterCallback`;
otherwise under its bar). Long runs such as `univg demo` want a bar per stage on the terminal and the
numbers in a file: `watch_quietly` swaps the Trainer's printing callbacks for `LoggedProgress`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm
from transformers import Trainer, TrainerCallback, TrainerControl, TrainerState, TrainingArguments
from transformers.trainer_callback import PrinterCallback, ProgressCallback

# What the bar shows after each log entry, when the entry has it.
SHOWN = ("loss", "reward", "rewards/accuracy_reward/mean", "difficulty/phi_mean")
SHORT = {"rewards/accuracy_reward/mean": "acc", "difficulty/phi_mean": "phi"}


class LoggedProgress(TrainerCallback):
    """A tqdm bar over the run's optimizer steps, and each log entry appended to a JSON Lines file."""

    def __init__(self, log_file: str | Path, description: str, *, show_bar: bool = True) -> None:
        self.log_file = Path(log_file)
        self.description = description
        self.show_bar = show_bar
        self.bar: Any = None

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if not state.is_world_process_zero:
            return
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self.bar = tqdm(
            total=state.max_steps,
            initial=state.global_step,
            desc=self.description,
            unit="step",
            disable=not self.show_bar,
            dynamic_ncols=True,
            leave=True,
        )

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if not state.is_world_process_zero or not logs:
            return
        entry = {"step": state.global_step, **logs}
        with self.log_file.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry, default=str) + "\n")
        if self.bar is not None:
            shown = {
                SHORT.get(key, key): f"{value:.3g}"
                for key in SHOWN
                if isinstance(value := logs.get(key), int | float) and math.isfinite(value)
            }
            if shown:
                self.bar.set_postfix(shown, refresh=False)

    def on_train_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def watch_quietly(trainer: Trainer, log_file: str | Path, description: str, *, show_bar: bool = True) -> None:
    """Replace the Trainer's printed log dicts (and its own bar) by `LoggedProgress`."""
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    trainer.add_callback(LoggedProgress(log_file, description, show_bar=show_bar))
