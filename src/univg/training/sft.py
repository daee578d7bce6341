"""Stage 1: chain-of-thought SFT (the paper's cold start), a thin layer over TRL's SFTTrainer.

What UniVG-R1's stage 1 needs beyond stock SFT, and all this module holds:
- data: canonical JSONL mixed by ratio; dialogues a converter split into turns train as one
  conversation; the loss is on the assistant turns only (TRL's assistant-only mask, read from the
  generation markers of the Qwen2-VL training template);
- length: a conversation longer than `max_length` is dropped before training and listed when training
  ends, never truncated: a cut inside the image tokens leaves pixel values with no place in the
  sequence, and a cut inside the answer teaches a box that stops halfway;
- which parts train (vision tower, merger, language model), fully or through LoRA adapters. The paper's
  recipe (LLaMA-Factory defaults) trains the language model in full and freezes the rest;
- a resume that restores the weights, which transformers 5.24 does not for Qwen2-VL (`ExactResumeMixin`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments
from trl import SFTConfig, SFTTrainer

from univg.data.files import write_json_atomic
from univg.data.images import probe_image
from univg.models.budget import image_tokens
from univg.training.data import (
    Conversation,
    TrainingDataArguments,
    conversation_messages,
    load_training_conversations,
    sft_dataset,
)
from univg.training.model_config import UniVGModelConfig, load_training_model
from univg.training.runner import ExactResumeMixin, TrainResult, run_trainer

logger = logging.getLogger(__name__)

DROPPED_FILE = "dropped_too_long.json"
_LOGGED_IDS = 20


@dataclass
class UniVGSFTConfig(TrainingDataArguments, UniVGModelConfig, SFTConfig):
    """TRL's SFTConfig and ModelConfig plus our data and model-part fields (YAML recipes set them all)."""

    multi_turn: bool = field(
        default=True,
        metadata={
            "help": "train the turns of one converted dialogue as one conversation (False: each alone)"
        },
    )
    assistant_only_loss: bool = field(
        default=True, metadata={"help": "loss on the assistant turns only (the answers), not on prompts"}
    )


@dataclass(frozen=True)
class DroppedConversation:
    """A conversation left out of training because it does not fit in `max_length` tokens."""

    id: str
    num_tokens: int


def conversation_length(turns: Conversation, args: TrainingDataArguments, processor: Any) -> int:
    """Tokens of a conversation exactly as TRL's collator builds it, read from image headers only.

    The chat template writes one `<|image_pad|>` per image (one token); the processor expands it to
    the image's tokens (`image_tokens`), which depend on the image size alone.
    """
    text = processor.apply_chat_template(conversation_messages(turns, args), tokenize=False)
    tokens = len(processor.tokenizer(text, add_special_tokens=False)["input_ids"])
    return tokens + sum(image_tokens(processor, probe_image(path)) - 1 for path in turns[0].images)


def drop_overlong(
    conversations: Sequence[Conversation],
    args: TrainingDataArguments,
    processor: Any,
    max_length: int | None,
) -> tuple[list[Conversation], list[DroppedConversation]]:
    """The conversations that fit in `max_length` tokens, and the ones that do not (never truncated)."""
    if max_length is None:
        return list(conversations), []
    kept: list[Conversation] = []
    dropped: list[DroppedConversation] = []
    for turns in conversations:
        length = conversation_length(turns, args, processor)
        if length > max_length:
            dropped.append(DroppedConversation(turns[0].id, length))
        else:
            kept.append(turns)
    return kept, dropped


class DroppedReport(TrainerCallback):
    """Lists the conversations dropped for length when training ends (log + `dropped_too_long.json`)."""

    def __init__(self, dropped: Sequence[DroppedConversation], total: int, max_length: int | None) -> None:
        self.dropped = list(dropped)
        self.total = total
        self.max_length = max_length

    def on_train_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if not self.dropped or not state.is_world_process_zero:
            return
        path = Path(args.output_dir) / DROPPED_FILE
        write_json_atomic(
            path,
            {
                "max_length": self.max_length,
                "dropped": [{"id": d.id, "num_tokens": d.num_tokens} for d in self.dropped],
            },
        )
        shown = ", ".join(f"{d.id} ({d.num_tokens} tokens)" for d in self.dropped[:_LOGGED_IDS])
        more = len(self.dropped) - _LOGGED_IDS
        logger.warning(
            "%d of %d conversations were longer than max_length=%s tokens and were not trained on: %s%s; "
            "all are listed in %s",
            len(self.dropped),
            self.total,
            self.max_length,
            shown,
            f" and {more} more" if more > 0 else "",
            path,
        )


class UniVGSFTTrainer(ExactResumeMixin, SFTTrainer):
    """SFTTrainer whose `--resume` restores the model weights (see `ExactResumeMixin`)."""


def build_sft_trainer(config: UniVGSFTConfig) -> UniVGSFTTrainer:
    """The trainer for a config: model with its parts frozen (or LoRA), processor, mixed conversations."""
    conversations = load_training_conversations(config, multi_turn=config.multi_turn)  # data first: quick
    prepared = load_training_model(config)
    loaded = prepared.loaded
    kept, dropped = drop_overlong(conversations, config, loaded.processor, config.max_length)
    if not kept:
        raise ValueError(
            f"all {len(conversations)} conversations are longer than max_length={config.max_length}"
        )
    if dropped:
        logger.info(
            "dropping %d of %d conversations longer than max_length=%d tokens",
            len(dropped),
            len(conversations),
            config.max_length,
        )
    return UniVGSFTTrainer(
        model=loaded.model,
        args=config,
        train_dataset=sft_dataset(kept, config),
        processing_class=loaded.processor,
        peft_config=prepared.peft_config,
        callbacks=[DroppedReport(dropped, len(conversations), config.max_length)],
    )


def train_sft(config: UniVGSFTConfig, *, resume: bool = False) -> TrainResult:
    """Run stage 1 and save the model (or LoRA adapter) and processor to `config.output_dir`."""
    return run_trainer(lambda: build_sft_trainer(config), config.output_dir, resume=resume)
